/**
 * Flow control of a Session, both ways, and the 'drain' owed to writers told to wait.
 *
 * Sending: queued DATA goes out as far as the stream's and the connection's credit allow,
 * in frames no larger than the peer accepts; a stream out of credit waits in `blocked`
 * until a WINDOW_UPDATE. Receiving: each DATA frame is charged to the connection window;
 * connection credit goes back on receipt and stream credit as the reader consumes, each in
 * a WINDOW_UPDATE once half its window is owed. Streams stay owned by the Session: this
 * class only holds the connection's counters and the sets of waiting streams.
 */
import { DEFAULT_LIMITS, Flags, FrameType, MAX_WINDOW } from './constants.js'
import { protocolError } from './errors.js'
import { encodeWindowUpdate } from './frame.js'
import type { FrameWriter } from './session-writer.js'
import type { Stream } from './stream.js'
import type { Limits } from './types.js'

const EMPTY = new Uint8Array(0)

export class FlowControl {
  #writer: FrameWriter
  #local: Limits
  /** Largest DATA payload the peer accepts (DEFAULT_LIMITS until its HELLO). */
  #maxFrame: number = DEFAULT_LIMITS.maxFramePayload
  #sendWindow: number = DEFAULT_LIMITS.connectionWindow
  #recvWindow: number
  /** Connection credit consumed but not yet announced in a WINDOW_UPDATE. */
  #connUnacked = 0
  /** Streams with DATA queued and no credit to send it. */
  #blocked = new Set<Stream>()
  /** Streams whose write() returned false: onDrain is owed. */
  #drainWaiters = new Set<Stream>()

  constructor (writer: FrameWriter, local: Limits) {
    this.#writer = writer
    this.#local = local
    this.#recvWindow = local.connectionWindow
  }

  /** The peer's HELLO: its frame size limit and its connection window. */
  peer (limits: Limits): void {
    this.#maxFrame = limits.maxFramePayload
    this.#sendWindow = limits.connectionWindow
  }

  /** Send the stream's queued DATA as credit allows; true when that ended our half of it. */
  send (stream: Stream): boolean {
    if (stream.closed) return false
    const maxFrame = this.#maxFrame
    while (stream.pendingBytes > 0) {
      const credit = Math.min(stream.sendWindow, this.#sendWindow, maxFrame)
      if (credit <= 0) {
        this.#blocked.add(stream)
        return false
      }
      const first = stream.pending[0]!
      const n = Math.min(first.length, credit)
      const piece = n === first.length ? first : first.subarray(0, n)
      if (n === first.length) stream.pending.shift()
      else stream.pending[0] = first.subarray(n)
      stream.pendingBytes -= n
      stream.sendWindow -= n
      this.#sendWindow -= n
      const last = stream.endPending && stream.pendingBytes === 0
      this.#writer.frame(FrameType.DATA, last ? Flags.END_STREAM : 0, stream.id, piece)
      if (last) {
        stream.localEnded = true
        this.#blocked.delete(stream)
        return true
      }
    }
    this.#blocked.delete(stream)
    if (stream.endPending && !stream.localEnded) {
      stream.localEnded = true
      this.#writer.frame(FrameType.DATA, Flags.END_STREAM, stream.id, EMPTY)
      return true
    }
    return false
  }

  /** WINDOW_UPDATE on stream 0: resume blocked streams (through their session's sendData). */
  connectionUpdate (inc: number): void {
    if (this.#sendWindow + inc > MAX_WINDOW) throw protocolError('FERRY_ERR_WINDOW_OVERFLOW', 'connection')
    this.#sendWindow += inc
    for (const s of [...this.#blocked]) {
      s.session.sendData(s)
      if (this.#sendWindow <= 0) break
    }
    this.notifyDrain()
  }

  /** WINDOW_UPDATE on an open stream. */
  streamUpdate (stream: Stream, inc: number): void {
    if (stream.sendWindow + inc > MAX_WINDOW) throw protocolError('FERRY_ERR_WINDOW_OVERFLOW', `stream ${stream.id}`, { streamId: stream.id })
    stream.sendWindow += inc
    if (stream.pendingBytes > 0 || stream.endPending) stream.session.sendData(stream)
    this.notifyDrain()
  }

  /** A DATA frame of `len` bytes arrived: charge the connection window. */
  receive (len: number): void {
    if (len > this.#recvWindow) throw protocolError('FERRY_ERR_FLOW_CONTROL', `connection window ${this.#recvWindow}, got ${len}`)
    this.#recvWindow -= len
  }

  /** Connection credit for `len` received bytes goes back (WINDOW_UPDATE once half is owed). */
  release (len: number): void {
    this.#connUnacked += len
    if (this.#connUnacked >= this.#local.connectionWindow >>> 1) {
      this.#recvWindow += this.#connUnacked
      this.#writer.piece(encodeWindowUpdate(0, this.#connUnacked))
      this.#connUnacked = 0
    }
  }

  /** Connection credit for `len` bytes is owed, announced with the next release(). */
  owe (len: number): void {
    this.#connUnacked += len
  }

  /** The reader consumed n bytes of an open stream: its credit goes back once half is owed. */
  returnCredit (stream: Stream, n: number): void {
    if (!stream.remoteEnded) {
      stream.unacked += n
      if (stream.unacked >= this.#local.initialWindow >>> 1) {
        stream.recvWindow += stream.unacked
        this.#writer.piece(encodeWindowUpdate(stream.id, stream.unacked))
        stream.unacked = 0
      }
    }
  }

  /** stream.write() returned false: call its onDrain once it may write again. */
  wantDrain (stream: Stream): void {
    this.#drainWaiters.add(stream)
  }

  /** Credit arrived or the socket drained: every waiting stream with nothing queued drains. */
  notifyDrain (): void {
    if (this.#writer.blocked || this.#drainWaiters.size === 0) return
    for (const s of [...this.#drainWaiters]) {
      if (s.closed) {
        this.#drainWaiters.delete(s)
      } else if (s.pendingBytes === 0) {
        this.#drainWaiters.delete(s)
        s.wantDrain = false
        s.onDrain?.()
      }
    }
  }

  /** The stream closed: it waits for nothing any more. */
  forget (stream: Stream): void {
    this.#blocked.delete(stream)
    this.#drainWaiters.delete(stream)
  }

  /** The session closed. */
  clear (): void {
    this.#blocked.clear()
    this.#drainWaiters.clear()
  }
}
