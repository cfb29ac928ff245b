/**
 * PING with round-trip time for a Session: each ping() sends a PING whose 8-byte opaque
 * payload carries a sequence number; the peer's PING ACK echoes it and settles the promise
 * with the elapsed milliseconds (or FERRY_ERR_PING_TIMEOUT). A PING from the peer is
 * answered at once with an ACK carrying the same payload.
 */
import { Flags } from './constants.js'
import { type FerryError, protocolError } from './errors.js'
import { encodePing } from './frame.js'
import type { FrameWriter } from './session-writer.js'

interface PendingPing {
  start: bigint
  resolve: (ms: number) => void
  reject: (err: FerryError) => void
  timer: NodeJS.Timeout
}

export class Pings {
  #writer: FrameWriter
  #pending = new Map<number, PendingPing>()
  #seq = 0
  /** PINGs from the peer answered so far. */
  received = 0

  constructor (writer: FrameWriter) {
    this.#writer = writer
  }

  /** Send a PING; resolves with the RTT in ms, rejects after `timeout` ms. */
  ping (timeout: number): Promise<number> {
    const seq = (this.#seq = (this.#seq + 1) >>> 0)
    const opaque = Buffer.alloc(8)
    opaque.writeUInt32BE(seq, 4)
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(seq)
        reject(protocolError('FERRY_ERR_PING_TIMEOUT', `${timeout} ms`))
      }, timeout)
      timer.unref()
      this.#pending.set(seq, { start: process.hrtime.bigint(), resolve, reject, timer })
      this.#writer.piece(encodePing(opaque, false))
    })
  }

  /** A PING frame from the peer: answer it, or settle the ping its ACK belongs to. */
  onPing (flags: number, payload: Buffer): void {
    if ((flags & Flags.ACK) === 0) {
      this.received++
      this.#writer.piece(encodePing(payload, true))
      return
    }
    const seq = payload.readUInt32BE(4)
    const p = this.#pending.get(seq)
    if (p === undefined) return
    this.#pending.delete(seq)
    clearTimeout(p.timer)
    p.resolve(Number(process.hrtime.bigint() - p.start) / 1e6)
  }

  /** The session closed: every outstanding ping fails with FERRY_ERR_SESSION_CLOSED. */
  rejectAll (): void {
    for (const p of this.#pending.values()) {
      clearTimeout(p.timer)
      p.reject(protocolError('FERRY_ERR_SESSION_CLOSED'))
    }
    this.#pending.clear()
  }
}
