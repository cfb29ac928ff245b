/**
 * The write side of a Session: frame batching onto one socket.
 *
 * Every frame produced in one event-loop turn is queued and written on setImmediate (or at
 * once past FLUSH_BYTES), so a turn that answers 50 requests costs one write, not 150.
 * Frame headers, heads, control frames and small DATA payloads are copied into a staging
 * buffer as they are queued (no Buffer per frame header, no write request per piece); only
 * DATA payloads above COPY_MAX travel as their own writev pieces, never copied.
 */
import type { Duplex } from 'node:stream'
import { FRAME_HEADER_SIZE, FrameType } from './constants.js'
import { encodeSmallFrame, writeFrameHeader } from './frame.js'

const FLUSH_BYTES = 256 * 1024
/** DATA payloads up to this size are copied into the staging buffer; larger ones are not. */
const COPY_MAX = 4096
/** Size of a fresh staging buffer (a bump allocator: flushed bytes are never overwritten). */
const STAGE_SIZE = 64 * 1024
const EMPTY_STAGE = Buffer.alloc(0)

export class FrameWriter {
  #socket: Duplex
  #out: Uint8Array[] = []
  #outBytes = 0
  #stage: Buffer = EMPTY_STAGE
  #stagePos = 0
  #stageStart = 0
  #flushScheduled = false
  #blocked = false

  constructor (socket: Duplex) {
    this.#socket = socket
  }

  /** The last socket write returned false and no 'drain' has come since. */
  get blocked (): boolean { return this.#blocked }

  /** The socket emitted 'drain'. */
  drained (): void {
    this.#blocked = false
  }

  /** Heads are always copied (they may be views into the encode scratch); DATA above COPY_MAX is not. */
  frame (type: number, flags: number, id: number, payload: Uint8Array): void {
    if (this.#socket.destroyed) return
    const len = payload.length
    const copy = type !== FrameType.DATA || len <= COPY_MAX
    const b = this.#reserve(copy ? FRAME_HEADER_SIZE + len : FRAME_HEADER_SIZE)
    const p = this.#stagePos
    writeFrameHeader(b, p, len, type, flags, id)
    if (copy) {
      if (len > 0) b.set(payload, p + FRAME_HEADER_SIZE)
      this.#stagePos = p + FRAME_HEADER_SIZE + len
    } else {
      this.#stagePos = p + FRAME_HEADER_SIZE
      this.#cutStage()
      this.#out.push(payload)
    }
    this.#queued(copy ? FRAME_HEADER_SIZE + len : FRAME_HEADER_SIZE + len)
  }

  /** A control frame (no flags) on stream `id` (0: the connection). */
  control (type: number, id: number, payload: Uint8Array): void {
    this.piece(encodeSmallFrame(type, 0, id, payload))
  }

  /** A prebuilt piece (preface, control frames): copied into the staging buffer. */
  piece (piece: Uint8Array): void {
    if (this.#socket.destroyed) return
    const b = this.#reserve(piece.length)
    b.set(piece, this.#stagePos)
    this.#stagePos += piece.length
    this.#queued(piece.length)
  }

  /** Room for n more bytes in the staging buffer (a fresh one when the current is full). */
  #reserve (n: number): Buffer {
    if (this.#stage.length - this.#stagePos >= n) return this.#stage
    this.#cutStage()
    this.#stage = Buffer.allocUnsafeSlow(Math.max(STAGE_SIZE, n))
    this.#stagePos = 0
    this.#stageStart = 0
    return this.#stage
  }

  /** Move the staged bytes not yet queued into #out (as one piece). */
  #cutStage (): void {
    if (this.#stagePos > this.#stageStart) {
      this.#out.push(this.#stage.subarray(this.#stageStart, this.#stagePos))
      this.#stageStart = this.#stagePos
    }
  }

  #queued (n: number): void {
    this.#outBytes += n
    if (this.#outBytes >= FLUSH_BYTES) this.flush()
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flushTick)
    }
  }

  #flushTick = (): void => {
    this.#flushScheduled = false
    this.flush()
  }

  /** Write everything queued now (one write, or several inside cork/uncork). */
  flush (): void {
    this.#cutStage()
    const out = this.#out
    if (out.length === 0) return
    this.#out = []
    this.#outBytes = 0
    const socket = this.#socket
    if (socket.destroyed || socket.writableEnded) return
    let ok: boolean
    if (out.length === 1) {
      ok = socket.write(out[0]!)
    } else {
      socket.cork()
      for (let i = 0; i < out.length - 1; i++) socket.write(out[i]!)
      ok = socket.write(out[out.length - 1]!)
      socket.uncork()
    }
    if (!ok) this.#blocked = true
  }

  /** The socket closed: drop whatever is still queued. */
  discard (): void {
    this.#out.length = 0
    this.#outBytes = 0
    this.#stageStart = this.#stagePos
  }
}
