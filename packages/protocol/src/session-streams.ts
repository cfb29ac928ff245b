/**
 * The streams of a Session: the table of open streams, stream ids both ways, the
 * concurrency limits, and the stream state machine — the peer's HEADERS, DATA, RESET and
 * WINDOW_UPDATE on a stream, stream errors and refusals (RESET), and closing.
 *
 * The Session keeps the connection (preface, HELLO, GOAWAY, close) and dispatches stream
 * frames here. It hears back through `onClosed`, called once per stream that closes (after
 * a GOAWAY the last one ends the socket), and through its own events: 'stream' for a new
 * request, 'streamError' for a refused or reset stream.
 */
import { ferry } from '../gen/ferry.js'
import { Flags, FrameType, MAX_STREAM_ID, ResetCode } from './constants.js'
import { type FerryError, protocolError } from './errors.js'
import { decodeRequestHead, decodeResponseHead } from './head.js'
import type { FlowControl } from './session-flow.js'
import type { FrameWriter } from './session-writer.js'
import { IntTable } from './int-table.js'
import { Stream, type StreamOwner } from './stream.js'
import type { Limits, RequestHead, ResponseHead } from './types.js'

/** The Session as its streams see it: each Stream's owner, and the emitter of their events. */
export interface StreamsHost extends StreamOwner {
  readonly peerLimits: Limits
  emit (event: 'stream' | 'streamError', arg: Stream | FerryError): boolean
  listenerCount (event: 'streamError'): number
}

export class Streams {
  readonly #host: StreamsHost
  readonly #client: boolean
  readonly #local: Limits
  readonly #writer: FrameWriter
  readonly #flow: FlowControl
  readonly #onClosed: () => void
  /** Open streams by id (IntTable: not a Map, see there). */
  #table = new IntTable<Stream>()
  #open = 0
  /** Client: the id of the next stream we open. */
  #nextId = 1
  /** Server: the largest stream id the peer opened (or tried to). */
  #lastPeerId = 0
  /** Server: HEADERS above this id are refused (the last stream id of the GOAWAY we sent). */
  #acceptUpTo = MAX_STREAM_ID

  constructor (host: StreamsHost, client: boolean, local: Limits, writer: FrameWriter, flow: FlowControl, onClosed: () => void, firstId = 1) {
    this.#host = host
    this.#client = client
    this.#nextId = firstId
    this.#local = local
    this.#writer = writer
    this.#flow = flow
    this.#onClosed = onClosed
  }

  /** Streams open now. */
  get open (): number { return this.#open }
  get lastPeerId (): number { return this.#lastPeerId }

  /** We sent GOAWAY with this last stream id: refuse the peer's streams above it. */
  refuseAbove (lastId: number): void {
    this.#acceptUpTo = lastId
  }

  // ── opening ────────────────────────────────────────────────────────────────

  /** Client: how many more streams this session can open before its ids run out. */
  get idsLeft (): number {
    return this.#nextId > MAX_STREAM_ID ? 0 : (MAX_STREAM_ID - this.#nextId) / 2 + 1
  }

  /** Client: FERRY_ERR_STREAM_LIMIT at the peer's limit; false once stream ids ran out. */
  canOpen (): boolean {
    const max = this.#host.peerLimits.maxConcurrentStreams
    if (this.#open >= max) throw protocolError('FERRY_ERR_STREAM_LIMIT', `${this.#open} open, peer allows ${max}`)
    return this.#nextId <= MAX_STREAM_ID
  }

  /** Client: a new stream, whose HEADERS the caller sends at once. */
  openLocal (endStream: boolean): Stream {
    const id = this.#nextId
    this.#nextId += 2
    const stream = new Stream(id, this.#host, this.#local.initialWindow, this.#host.peerLimits.initialWindow)
    stream.headersSent = true
    if (endStream) stream.localEnded = true
    this.#table.set(id, stream)
    this.#open++
    return stream
  }

  /** Server: the peer's HEADERS open a stream (or are refused with a RESET). */
  onRequestHeaders (flags: number, id: number, payload: Buffer): void {
    if ((id & 1) === 0 || id <= this.#lastPeerId) {
      const existing = this.#table.get(id)
      if (existing !== undefined) {
        this.#streamError(existing, protocolError('FERRY_ERR_STREAM_STATE', 'second HEADERS on a stream (trailers are not supported)', { streamId: id }))
        return
      }
      throw protocolError('FERRY_ERR_STREAM_ID', `stream ${id} after ${this.#lastPeerId}`, { streamId: id })
    }
    this.#lastPeerId = id
    const endStream = (flags & Flags.END_STREAM) !== 0
    if (id > this.#acceptUpTo) {
      this.#refuse(id, protocolError('FERRY_ERR_GOAWAY', `stream ${id} after GOAWAY`, { streamId: id }))
      return
    }
    if (this.#open >= this.#local.maxConcurrentStreams) {
      this.#refuse(id, protocolError('FERRY_ERR_STREAM_LIMIT', `${this.#open} open`, { streamId: id }))
      return
    }
    if (payload.length > this.#local.maxHeadBytes) {
      this.#refuse(id, protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.#local.maxHeadBytes}`, { streamId: id }))
      return
    }
    let head: RequestHead
    try {
      head = decodeRequestHead(payload, id)
    } catch (err) {
      this.#refuse(id, err as FerryError)
      return
    }
    const stream = new Stream(id, this.#host, this.#local.initialWindow, this.#host.peerLimits.initialWindow)
    stream.head = head
    stream.expectedLength = head.bodyLength
    this.#table.set(id, stream)
    this.#open++
    if (endStream) {
      stream.remoteEnded = true
      if (head.bodyLength > 0) {
        this.#streamError(stream, protocolError('FERRY_ERR_BODY_LENGTH', `declared ${head.bodyLength}, got 0`, { streamId: id }))
        return
      }
    }
    this.#host.emit('stream', stream)
  }

  // ── the peer's frames on a stream ──────────────────────────────────────────

  /** Client: the response head on one of our streams. */
  onResponseHeaders (flags: number, id: number, payload: Buffer): void {
    const stream = this.#table.get(id)
    if (stream === undefined) {
      if ((id & 1) === 1 && id < this.#nextId) return // a stream we already closed
      throw protocolError('FERRY_ERR_STREAM_ID', `response on stream ${id} never opened`, { streamId: id })
    }
    if (stream.response !== null) {
      this.#streamError(stream, protocolError('FERRY_ERR_STREAM_STATE', 'second HEADERS on a stream', { streamId: id }))
      return
    }
    let head: ResponseHead
    try {
      if (payload.length > this.#local.maxHeadBytes) {
        throw protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.#local.maxHeadBytes}`, { streamId: id })
      }
      head = decodeResponseHead(payload, id)
    } catch (err) {
      this.#streamError(stream, err as FerryError)
      return
    }
    stream.response = head
    stream.expectedLength = head.bodyLength
    const endStream = (flags & Flags.END_STREAM) !== 0
    if (endStream) stream.remoteEnded = true
    if (endStream && head.bodyLength > 0) {
      this.#streamError(stream, protocolError('FERRY_ERR_BODY_LENGTH', `declared ${head.bodyLength}, got 0`, { streamId: id }))
      return
    }
    stream.onResponse?.(head, endStream)
    if (endStream) {
      stream.onEnd?.()
      this.maybeClose(stream)
    }
  }

  onData (flags: number, id: number, payload: Buffer): void {
    const len = payload.length
    this.#flow.receive(len)
    const stream = this.#table.get(id)
    if (stream === undefined) {
      if (!this.#knownClosed(id)) throw protocolError('FERRY_ERR_STREAM_ID', `DATA on stream ${id} never opened`, { streamId: id })
      // DATA that was in flight when we closed or refused the stream: drop, keep the credit flowing.
      this.#flow.release(len)
      return
    }
    if (stream.remoteEnded || (this.#client && stream.response === null)) {
      this.#flow.owe(len)
      this.#streamError(stream, protocolError('FERRY_ERR_STREAM_STATE', stream.remoteEnded ? 'DATA after END_STREAM' : 'DATA before the response head', { streamId: id }))
      return
    }
    if (len > stream.recvWindow) throw protocolError('FERRY_ERR_FLOW_CONTROL', `stream ${id} window ${stream.recvWindow}, got ${len}`, { streamId: id })
    stream.recvWindow -= len
    stream.bytesReceived += len
    // Connection credit goes back on receipt: what a stream holds is bounded by its own
    // window, and a stream whose reader is slow (a WebSocket, a slow client) must not stall
    // the other streams of the connection by holding connection credit.
    this.#flow.release(len)
    const endStream = (flags & Flags.END_STREAM) !== 0
    if (stream.expectedLength >= 0 && (stream.bytesReceived > stream.expectedLength || (endStream && stream.bytesReceived !== stream.expectedLength))) {
      this.#streamError(stream, protocolError('FERRY_ERR_BODY_LENGTH', `declared ${stream.expectedLength}, got ${stream.bytesReceived}${endStream ? '' : '+'}`, { streamId: id }))
      return
    }
    if (endStream) stream.remoteEnded = true
    if (len > 0) {
      stream.onData?.(payload)
      if (!stream.manualConsume && !stream.closed) stream.consume(len)
    }
    if (endStream && !stream.closed) {
      stream.onEnd?.()
      this.maybeClose(stream)
    }
  }

  onReset (id: number, payload: Buffer): void {
    let msg: ferry.Reset
    try {
      msg = ferry.Reset.decode(payload)
    } catch (cause) {
      throw protocolError('FERRY_ERR_PAYLOAD_INVALID', 'RESET', { cause })
    }
    const stream = this.#table.get(id)
    if (stream === undefined) return
    const err = protocolError('FERRY_ERR_STREAM_RESET', `code ${msg.code}${msg.message ? ` (${msg.message})` : ''}`, { streamId: id, resetCode: msg.code })
    this.close(stream)
    stream.onError?.(err)
  }

  /** WINDOW_UPDATE on a stream (id > 0); `inc` is already checked to be nonzero. */
  onWindowUpdate (id: number, inc: number): void {
    const stream = this.#table.get(id)
    if (stream === undefined) {
      if (!this.#knownClosed(id)) throw protocolError('FERRY_ERR_STREAM_ID', `WINDOW_UPDATE on stream ${id} never opened`, { streamId: id })
      return
    }
    this.#flow.streamUpdate(stream, inc)
  }

  /** A stream id that existed once (or was refused): late frames for it are not an error. */
  #knownClosed (id: number): boolean {
    if (!this.#client) return (id & 1) === 1 && id <= this.#lastPeerId
    return (id & 1) === 1 && id < this.#nextId
  }

  // ── stream errors and closing ──────────────────────────────────────────────

  #refuse (id: number, err: FerryError): void {
    this.#writer.control(FrameType.RESET, id, ferry.Reset.encode({ code: err.resetCode, message: err.message }).finish())
    this.#emitStreamError(err)
  }

  #streamError (stream: Stream, err: FerryError): void {
    this.#writer.control(FrameType.RESET, stream.id, ferry.Reset.encode({ code: err.resetCode, message: err.message }).finish())
    this.close(stream)
    this.#emitStreamError(err)
    stream.onError?.(err)
  }

  #emitStreamError (err: FerryError): void {
    if (this.#host.listenerCount('streamError') > 0) this.#host.emit('streamError', err)
  }

  /** Close the stream once both halves have ended. */
  maybeClose (stream: Stream): void {
    if (stream.localEnded && stream.remoteEnded && !stream.closed) this.close(stream)
  }

  close (stream: Stream): void {
    if (stream.closed) return
    stream.closed = true
    stream.localEnded = true
    stream.remoteEnded = true
    stream.pending.length = 0
    stream.pendingBytes = 0
    this.#flow.forget(stream)
    if (this.#table.delete(stream.id)) this.#open--
    stream.bytesConsumed = stream.bytesReceived
    this.#onClosed()
  }

  /** Client, on the peer's GOAWAY: streams above its last id were never processed (safe to retry). */
  failAbove (lastId: number): void {
    for (const s of this.#table.values()) {
      if (s.id > lastId) {
        this.close(s)
        s.onError?.(protocolError('FERRY_ERR_GOAWAY', `stream ${s.id} not processed (last ${lastId})`, { streamId: s.id, resetCode: ResetCode.REFUSED_STREAM }))
      }
    }
  }

  /** The session closed: every open stream fails with `err` (no onClosed: nothing is left to end). */
  failAll (err: FerryError): void {
    const streams = this.#table.values()
    this.#table.clear()
    this.#open = 0
    this.#flow.clear()
    for (const s of streams) {
      s.closed = true
      s.localEnded = true
      s.remoteEnded = true
      s.onError?.(err)
    }
  }
}
