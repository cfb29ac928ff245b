/**
 * A native ferry connection over any Duplex: multiplexed streams, per-stream and
 * per-connection flow control, RESET, GOAWAY drain and close. Shared by the front (role
 * 'client') and the app-server (role 'server'). Contract: docs/dev/session-api.md; bytes:
 * docs/protocol.md.
 *
 * Its parts live beside it: the HELLO exchange, limits and shared-secret auth in
 * session-hello.ts; credit windows both ways, DATA sending and 'drain' in session-flow.ts;
 * the batching frame writer in session-writer.ts; PING with RTT in session-ping.ts. This
 * file keeps the frame dispatch, the stream table and the stream and connection state
 * machines (HEADERS, DATA, RESET, GOAWAY, close), which read and write the same fields
 * (open streams, last stream ids, closed/goingAway) on every frame.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { ferry } from '../gen/ferry.js'
import { DEFAULT_LIMITS, Flags, FrameType, MAX_STREAM_ID, PREFACE, ResetCode } from './constants.js'
import { type FerryError, isFerryError, protocolError } from './errors.js'
import { encodeSmallFrame, FrameDecoder } from './frame.js'
import { decodeRequestHead, decodeResponseHead, encodeRequestHeadView, encodeResponseHeadView } from './head.js'
import { Handshake, resolveLimits, validateLimits } from './session-hello.js'
import { FlowControl } from './session-flow.js'
import { Pings } from './session-ping.js'
import { FrameWriter } from './session-writer.js'
import { Stream, type StreamOwner, StreamTable } from './stream.js'
import type { Limits, RequestHead, ResponseHead } from './types.js'

export { Stream } from './stream.js'

export type SessionRole = 'client' | 'server'

export interface SessionOptions {
  role: SessionRole
  /** What this side accepts (sent in HELLO); missing fields take DEFAULT_LIMITS. */
  limits?: Partial<Limits>
  /**
   * Shared secret for HMAC-SHA256 challenge-response in HELLO (both sides must hold the
   * same one; it never crosses the wire). A server with a secret refuses clients without
   * it; a client with a secret refuses a server that cannot prove it (mutual).
   */
  auth?: string
  agent?: string
  /** Optional features this side supports, announced in HELLO (e.g. 'websocket'). */
  features?: readonly string[]
  /** ms to wait for the peer's HELLO (default 10000). */
  helloTimeout?: number
  /** ms before ping() rejects (default 10000). */
  pingTimeout?: number
  /** Server: bytes already read from the socket (the sniffed first chunk). */
  initialData?: Buffer
}

export interface GoAwayInfo {
  lastStreamId: number
  code: number
  message: string
}

export class Session extends EventEmitter implements StreamOwner {
  readonly role: SessionRole
  readonly localLimits: Limits
  peerLimits: Limits = { ...DEFAULT_LIMITS }
  /** Features the peer's HELLO named ([] until it arrives). */
  peerFeatures: readonly string[] = []
  ready = false
  closed = false
  goingAway = false
  openStreams = 0

  #socket: Duplex
  #options: SessionOptions
  #decoder: FrameDecoder
  #streams = new StreamTable()
  #nextStreamId = 1
  #lastPeerStreamId = 0
  #prefaceLeft: number
  #helloTimer: NodeJS.Timeout | null = null
  #handshake: Handshake
  #writer: FrameWriter
  #pings: Pings

  #flow: FlowControl

  #goawaySent = false
  #goawayLastId = MAX_STREAM_ID
  #peerGoaway: GoAwayInfo | null = null
  #ending = false

  constructor (socket: Duplex, options: SessionOptions) {
    super()
    this.role = options.role
    this.#socket = socket
    this.#options = options
    this.localLimits = resolveLimits(options.limits)
    validateLimits(this.localLimits, 'local')
    this.#handshake = new Handshake(this.role === 'server', options)
    this.#writer = new FrameWriter(socket)
    this.#pings = new Pings(this.#writer)
    this.#flow = new FlowControl(this.#writer, this.localLimits)
    this.#prefaceLeft = this.role === 'server' ? PREFACE.length : 0
    this.#decoder = new FrameDecoder({
      maxFramePayload: this.localLimits.maxFramePayload,
      maxHeadersPayload: Math.max(this.localLimits.maxFramePayload, this.localLimits.maxHeadBytes)
    }, (type, flags, id, payload) => this.#onFrame(type, flags, id, payload))

    socket.on('data', (chunk: Buffer) => this.#onSocketData(chunk))
    socket.on('drain', () => this.#onSocketDrain())
    socket.on('error', (err: Error) => this.#onSocketError(err))
    socket.on('close', () => this.#onSocketClose())
    socket.on('end', () => this.#onSocketEnd())

    if (this.role === 'client') {
      this.#writer.piece(PREFACE)
      this.#writer.control(FrameType.HELLO, 0, this.#handshake.hello(this.localLimits))
    }
    // The server answers the client's HELLO (its proof needs the client's nonce).
    const helloTimeout = options.helloTimeout ?? 10000
    this.#helloTimer = setTimeout(() => this.#fail(protocolError('FERRY_ERR_HELLO_TIMEOUT', `${helloTimeout} ms`)), helloTimeout)
    this.#helloTimer.unref()
    if (options.initialData !== undefined && options.initialData.length > 0) {
      // Processed on the next tick so the caller can attach 'ready'/'stream' listeners first;
      // socket data arriving before then is queued behind it (#onSocketData), never ahead.
      this.#initialData = options.initialData
      process.nextTick(() => this.#drainInitialData())
    }
  }

  get socket (): Duplex { return this.#socket }
  get socketBlocked (): boolean { return this.#writer.blocked }
  /** The peer's GOAWAY, if one arrived. */
  get peerGoaway (): GoAwayInfo | null { return this.#peerGoaway }

  // ── public API ─────────────────────────────────────────────────────────────

  /** Client: open a stream carrying a request. Wait for 'ready' first. */
  request (head: RequestHead, endStream: boolean): Stream {
    if (this.role !== 'client') throw new Error('request() is for client sessions')
    if (this.closed) throw protocolError('FERRY_ERR_SESSION_CLOSED')
    if (this.goingAway) throw protocolError('FERRY_ERR_GOAWAY')
    if (this.openStreams >= this.peerLimits.maxConcurrentStreams) {
      throw protocolError('FERRY_ERR_STREAM_LIMIT', `${this.openStreams} open, peer allows ${this.peerLimits.maxConcurrentStreams}`)
    }
    if (this.#nextStreamId > MAX_STREAM_ID) {
      this.goaway(ResetCode.NO_ERROR, 'stream ids exhausted')
      throw protocolError('FERRY_ERR_GOAWAY', 'stream ids exhausted')
    }
    const payload = encodeRequestHeadView(head)
    if (payload.length > this.peerLimits.maxHeadBytes) {
      throw protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.peerLimits.maxHeadBytes}`)
    }
    const id = this.#nextStreamId
    this.#nextStreamId += 2
    const stream = new Stream(id, this, this.localLimits.initialWindow, this.peerLimits.initialWindow)
    stream.headersSent = true
    if (endStream) stream.localEnded = true
    this.#streams.set(id, stream)
    this.openStreams++
    this.#writer.frame(FrameType.HEADERS, endStream ? Flags.END_STREAM : 0, id, payload)
    return stream
  }

  /** Measure round-trip time to the peer, in milliseconds. */
  ping (): Promise<number> {
    if (this.closed) return Promise.reject(protocolError('FERRY_ERR_SESSION_CLOSED'))
    return this.#pings.ping(this.#options.pingTimeout ?? 10000)
  }

  /** Graceful drain: no new streams; open ones finish; then the socket ends (FIN). */
  /**
   * Returns a promise that resolves once no new stream can arrive any more (for a server's
   * two-phase drain: after the final GOAWAY; otherwise at once), so a caller can stop
   * dispatching only then.
   */
  goaway (code: number = ResetCode.NO_ERROR, message = ''): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.goingAway = true
    if (!this.#goawaySent) {
      this.#goawaySent = true
      if (this.role === 'server' && code === ResetCode.NO_ERROR && this.ready) {
        this.#goawayDone = this.#twoPhaseGoaway(message)
        return this.#goawayDone
      }
      this.#goawayLastId = this.role === 'server' ? this.#lastPeerStreamId : 0
      this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({ lastStreamId: this.#goawayLastId, code, message }).finish())
    }
    this.#maybeEnd()
    return this.#goawayDone
  }

  #goawayDone: Promise<void> = Promise.resolve()

  /**
   * A server's graceful drain in two phases (as HTTP/2 servers do), so that no request the
   * client sent before it learnt of the drain is refused: first GOAWAY with the largest
   * stream id ("open no new streams") and a PING; the client's PING ACK comes after every
   * HEADERS it sent before reading that GOAWAY, so once the ACK is in, a second GOAWAY with
   * the real last stream id refuses nothing that was in flight.
   */
  #twoPhaseGoaway (message: string): Promise<void> {
    this.#goawayPending = true
    this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({ lastStreamId: MAX_STREAM_ID, code: ResetCode.NO_ERROR, message }).finish())
    const finish = (): void => {
      this.#goawayPending = false
      if (this.closed) return
      this.#goawayLastId = this.#lastPeerStreamId
      this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({ lastStreamId: this.#goawayLastId, code: ResetCode.NO_ERROR, message }).finish())
      this.#maybeEnd()
    }
    return this.ping().then(finish, finish)
  }

  /** Between the two GOAWAYs of a server's drain: the socket must not end yet. */
  #goawayPending = false

  /** Close now: every open stream fails; the peer gets a GOAWAY with the error's code. */
  destroy (err?: FerryError): void {
    if (this.closed) return
    if (err !== undefined) this.#fail(err)
    else this.#close(protocolError('FERRY_ERR_SESSION_CLOSED'))
  }

  // ── StreamOwner (called by Stream) ─────────────────────────────────────────

  /** The payload is a view into the shared encode scratch: pass it to sendHeaders at once. */
  encodeResponse (head: ResponseHead): Uint8Array {
    const payload = encodeResponseHeadView(head)
    if (payload.length > this.peerLimits.maxHeadBytes) {
      throw protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.peerLimits.maxHeadBytes}`)
    }
    return payload
  }

  sendHeaders (stream: Stream, payload: Uint8Array, endStream: boolean): void {
    this.#writer.frame(FrameType.HEADERS, endStream ? Flags.END_STREAM : 0, stream.id, payload)
    if (endStream) this.#afterLocalEnd(stream)
  }

  sendData (stream: Stream): void {
    if (this.#flow.send(stream)) this.#afterLocalEnd(stream)
  }

  sendReset (stream: Stream, code: number, message: string): void {
    this.#writer.control(FrameType.RESET, stream.id, ferry.Reset.encode({ code, message }).finish())
    this.#closeStream(stream)
  }

  returnCredit (stream: Stream, n: number): void {
    if (stream.closed) return
    this.#flow.returnCredit(stream, n)
  }

  wantDrain (stream: Stream): void {
    this.#flow.wantDrain(stream)
  }

  // ── receiving ──────────────────────────────────────────────────────────────

  #initialData: Buffer | null = null

  #drainInitialData (): void {
    const first = this.#initialData
    if (first === null) return
    this.#initialData = null
    this.#onSocketData(first)
  }

  #onSocketData (chunk: Buffer): void {
    if (this.#initialData !== null) {
      const first = this.#initialData
      this.#initialData = null
      chunk = Buffer.concat([first, chunk])
    }
    if (this.closed) return
    try {
      if (this.#prefaceLeft > 0) {
        const off = PREFACE.length - this.#prefaceLeft
        const n = Math.min(this.#prefaceLeft, chunk.length)
        for (let i = 0; i < n; i++) {
          if (chunk[i] !== PREFACE[off + i]) throw protocolError('FERRY_ERR_PREFACE')
        }
        this.#prefaceLeft -= n
        if (n === chunk.length) return
        chunk = chunk.subarray(n)
      }
      this.#decoder.push(chunk)
    } catch (err) {
      this.#fail(isFerryError(err) ? err : protocolError('FERRY_ERR_SESSION_INTERNAL', (err as Error)?.message, { cause: err }))
    }
  }

  #onFrame (type: number, flags: number, id: number, payload: Buffer): void {
    if (this.closed) return
    if (!this.ready && type !== FrameType.HELLO) {
      if (this.#handshake.awaitingProof) throw protocolError('FERRY_ERR_AUTH', 'client sent no proof of the shared secret')
      throw protocolError('FERRY_ERR_HELLO_REQUIRED', `got frame type ${type}`)
    }
    switch (type) {
      case FrameType.DATA: this.#onDataFrame(flags, id, payload); break
      case FrameType.HEADERS:
        if (this.role === 'server') this.#onRequestHeaders(flags, id, payload)
        else this.#onResponseHeaders(flags, id, payload)
        break
      case FrameType.RESET: this.#onReset(id, payload); break
      case FrameType.GOAWAY: this.#onGoaway(payload); break
      case FrameType.PING: this.#pings.onPing(flags, payload); break
      case FrameType.WINDOW_UPDATE: this.#onWindowUpdate(id, payload); break
      case FrameType.HELLO:
        if ((flags & Flags.ACK) !== 0) this.#onHelloAck(payload)
        else this.#onHello(payload)
        break
    }
  }

  #onHello (payload: Buffer): void {
    const hs = this.#handshake
    const peer = hs.receiveHello(payload, this.ready)
    this.peerLimits = peer.limits
    this.peerFeatures = peer.features
    this.#flow.peer(peer.limits)
    if (this.role === 'server') {
      this.#writer.control(FrameType.HELLO, 0, hs.hello(this.localLimits))
      if (hs.secured) {
        hs.expectProof()
        return
      }
    } else if (hs.secured) {
      this.#writer.piece(encodeSmallFrame(FrameType.HELLO, Flags.ACK, 0, hs.ack()))
    }
    this.#becomeReady()
  }

  /** Server: the client's proof of the shared secret (HELLO with ACK). */
  #onHelloAck (payload: Buffer): void {
    this.#handshake.receiveAck(payload)
    this.#becomeReady()
  }

  #becomeReady (): void {
    this.ready = true
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer)
    this.#helloTimer = null
    this.emit('ready')
  }

  #onRequestHeaders (flags: number, id: number, payload: Buffer): void {
    if ((id & 1) === 0 || id <= this.#lastPeerStreamId) {
      const existing = this.#streams.get(id)
      if (existing !== undefined) {
        this.#streamError(existing, protocolError('FERRY_ERR_STREAM_STATE', 'second HEADERS on a stream (trailers are not supported)', { streamId: id }))
        return
      }
      throw protocolError('FERRY_ERR_STREAM_ID', `stream ${id} after ${this.#lastPeerStreamId}`, { streamId: id })
    }
    this.#lastPeerStreamId = id
    const endStream = (flags & Flags.END_STREAM) !== 0
    if (this.#goawaySent && id > this.#goawayLastId) {
      this.#refuse(id, protocolError('FERRY_ERR_GOAWAY', `stream ${id} after GOAWAY`, { streamId: id }))
      return
    }
    if (this.openStreams >= this.localLimits.maxConcurrentStreams) {
      this.#refuse(id, protocolError('FERRY_ERR_STREAM_LIMIT', `${this.openStreams} open`, { streamId: id }))
      return
    }
    if (payload.length > this.localLimits.maxHeadBytes) {
      this.#refuse(id, protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.localLimits.maxHeadBytes}`, { streamId: id }))
      return
    }
    let head: RequestHead
    try {
      head = decodeRequestHead(payload, id)
    } catch (err) {
      this.#refuse(id, err as FerryError)
      return
    }
    const stream = new Stream(id, this, this.localLimits.initialWindow, this.peerLimits.initialWindow)
    stream.head = head
    stream.expectedLength = head.bodyLength
    this.#streams.set(id, stream)
    this.openStreams++
    if (endStream) {
      stream.remoteEnded = true
      if (head.bodyLength > 0) {
        this.#streamError(stream, protocolError('FERRY_ERR_BODY_LENGTH', `declared ${head.bodyLength}, got 0`, { streamId: id }))
        return
      }
    }
    this.emit('stream', stream)
  }

  #onResponseHeaders (flags: number, id: number, payload: Buffer): void {
    const stream = this.#streams.get(id)
    if (stream === undefined) {
      if ((id & 1) === 1 && id < this.#nextStreamId) return // a stream we already closed
      throw protocolError('FERRY_ERR_STREAM_ID', `response on stream ${id} never opened`, { streamId: id })
    }
    if (stream.response !== null) {
      this.#streamError(stream, protocolError('FERRY_ERR_STREAM_STATE', 'second HEADERS on a stream', { streamId: id }))
      return
    }
    let head: ResponseHead
    try {
      if (payload.length > this.localLimits.maxHeadBytes) {
        throw protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.localLimits.maxHeadBytes}`, { streamId: id })
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
      this.#maybeCloseStream(stream)
    }
  }

  #onDataFrame (flags: number, id: number, payload: Buffer): void {
    const len = payload.length
    this.#flow.receive(len)
    const stream = this.#streams.get(id)
    if (stream === undefined) {
      if (!this.#knownClosed(id)) throw protocolError('FERRY_ERR_STREAM_ID', `DATA on stream ${id} never opened`, { streamId: id })
      // DATA that was in flight when we closed or refused the stream: drop, keep the credit flowing.
      this.#flow.release(len)
      return
    }
    if (stream.remoteEnded || (this.role === 'client' && stream.response === null)) {
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
      this.#maybeCloseStream(stream)
    }
  }

  #onReset (id: number, payload: Buffer): void {
    let msg: ferry.Reset
    try {
      msg = ferry.Reset.decode(payload)
    } catch (cause) {
      throw protocolError('FERRY_ERR_PAYLOAD_INVALID', 'RESET', { cause })
    }
    const stream = this.#streams.get(id)
    if (stream === undefined) return
    const err = protocolError('FERRY_ERR_STREAM_RESET', `code ${msg.code}${msg.message ? ` (${msg.message})` : ''}`, { streamId: id, resetCode: msg.code })
    this.#closeStream(stream)
    stream.onError?.(err)
  }

  #onGoaway (payload: Buffer): void {
    let msg: ferry.GoAway
    try {
      msg = ferry.GoAway.decode(payload)
    } catch (cause) {
      throw protocolError('FERRY_ERR_PAYLOAD_INVALID', 'GOAWAY', { cause })
    }
    const info: GoAwayInfo = { lastStreamId: msg.lastStreamId ?? 0, code: msg.code ?? 0, message: msg.message ?? '' }
    this.#peerGoaway = info
    this.goingAway = true
    if (this.role === 'client') {
      // Streams above the last id were never processed: fail them as safe to retry.
      for (const s of this.#streams.values()) {
        if (s.id > info.lastStreamId) {
          this.#closeStream(s)
          s.onError?.(protocolError('FERRY_ERR_GOAWAY', `stream ${s.id} not processed (last ${info.lastStreamId})`, { streamId: s.id, resetCode: ResetCode.REFUSED_STREAM }))
        }
      }
    }
    this.emit('goaway', info)
    if (info.code !== ResetCode.NO_ERROR) {
      this.#close(protocolError('FERRY_ERR_PEER_GOAWAY', `code ${info.code}${info.message ? ` (${info.message})` : ''}`))
      return
    }
    this.#maybeEnd()
  }

  #onWindowUpdate (id: number, payload: Buffer): void {
    const inc = payload.readUInt32BE(0) & 0x7fffffff
    if (inc === 0) throw protocolError('FERRY_ERR_WINDOW_ZERO', `stream ${id}`, { streamId: id })
    if (id === 0) {
      this.#flow.connectionUpdate(inc)
      return
    }
    const stream = this.#streams.get(id)
    if (stream === undefined) {
      if (!this.#knownClosed(id)) throw protocolError('FERRY_ERR_STREAM_ID', `WINDOW_UPDATE on stream ${id} never opened`, { streamId: id })
      return
    }
    this.#flow.streamUpdate(stream, inc)
  }

  // ── stream lifecycle ───────────────────────────────────────────────────────

  /** A stream id that existed once (or was refused): late frames for it are not an error. */
  #knownClosed (id: number): boolean {
    if (this.role === 'server') return (id & 1) === 1 && id <= this.#lastPeerStreamId
    return (id & 1) === 1 && id < this.#nextStreamId
  }

  #refuse (id: number, err: FerryError): void {
    this.#writer.control(FrameType.RESET, id, ferry.Reset.encode({ code: err.resetCode, message: err.message }).finish())
    this.#emitStreamError(err)
  }

  #streamError (stream: Stream, err: FerryError): void {
    this.#writer.control(FrameType.RESET, stream.id, ferry.Reset.encode({ code: err.resetCode, message: err.message }).finish())
    this.#closeStream(stream)
    this.#emitStreamError(err)
    stream.onError?.(err)
  }

  #emitStreamError (err: FerryError): void {
    if (this.listenerCount('streamError') > 0) this.emit('streamError', err)
  }

  #afterLocalEnd (stream: Stream): void {
    this.#maybeCloseStream(stream)
  }

  #maybeCloseStream (stream: Stream): void {
    if (stream.localEnded && stream.remoteEnded && !stream.closed) this.#closeStream(stream)
  }

  #closeStream (stream: Stream): void {
    if (stream.closed) return
    stream.closed = true
    stream.localEnded = true
    stream.remoteEnded = true
    stream.pending.length = 0
    stream.pendingBytes = 0
    this.#flow.forget(stream)
    if (this.#streams.delete(stream.id)) this.openStreams--
    stream.bytesConsumed = stream.bytesReceived
    this.#maybeEnd()
  }

  // ── connection lifecycle ───────────────────────────────────────────────────

  /** After GOAWAY (either way) and once no stream is open: end the socket gracefully. */
  #maybeEnd (): void {
    if (!this.goingAway || this.#goawayPending || this.openStreams > 0 || this.closed || this.#ending) return
    this.#ending = true
    this.#writer.flush()
    this.#socket.end()
    // A peer that never closes its side must not hold the socket forever.
    this.#destroyTimer = setTimeout(() => { if (!this.closed) this.#socket.destroy() }, 5000).unref()
  }

  #fail (err: FerryError): void {
    if (this.closed) return
    if (!this.#goawaySent && !this.#socket.destroyed) {
      this.#goawaySent = true
      this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({
        lastStreamId: this.role === 'server' ? this.#lastPeerStreamId : 0,
        code: err.resetCode,
        message: err.message.slice(0, 256)
      }).finish())
    }
    if (this.listenerCount('error') > 0) this.emit('error', err)
    this.#close(err)
  }

  #close (err: FerryError): void {
    if (this.closed) return
    this.closed = true
    this.goingAway = true
    if (this.#helloTimer !== null) clearTimeout(this.#helloTimer)
    this.#writer.flush()
    const streamErr = err.code === 'FERRY_ERR_SESSION_CLOSED' ? err : protocolError('FERRY_ERR_SESSION_CLOSED', err.message, { cause: err })
    this.#failStreams(streamErr)
    this.#pings.rejectAll()
    if (!this.#socket.destroyed) {
      this.#socket.end()
      this.#destroyTimer = setTimeout(() => this.#socket.destroy(), 1000).unref()
    }
  }

  #failStreams (err: FerryError): void {
    const streams = this.#streams.values()
    this.#streams.clear()
    this.openStreams = 0
    this.#flow.clear()
    for (const s of streams) {
      s.closed = true
      s.localEnded = true
      s.remoteEnded = true
      s.onError?.(err)
    }
  }

  #onSocketError (err: Error): void {
    this.#socketError = err
  }

  #socketError: Error | null = null

  #onSocketEnd (): void {
    // Peer sent FIN. Streams still open cannot complete.
    if (this.openStreams > 0 && !this.closed) {
      this.#close(protocolError('FERRY_ERR_SESSION_CLOSED', 'peer closed the connection'))
    }
  }

  /** Destroys a socket whose peer does not finish closing; cleared on 'close' so a closed
   * session is not kept alive by it. */
  #destroyTimer: NodeJS.Timeout | null = null

  #onSocketClose (): void {
    if (this.#destroyTimer !== null) clearTimeout(this.#destroyTimer)
    this.#destroyTimer = null
    const wasClosed = this.closed
    if (!wasClosed) {
      const detail = this.#socketError !== null ? this.#socketError.message : 'socket closed'
      this.closed = true
      this.goingAway = true
      if (this.#helloTimer !== null) clearTimeout(this.#helloTimer)
      this.#failStreams(protocolError('FERRY_ERR_SESSION_CLOSED', detail, { cause: this.#socketError ?? undefined }))
      this.#pings.rejectAll()
    }
    this.#writer.discard()
    this.emit('close')
  }

  #onSocketDrain (): void {
    this.#writer.drained()
    this.#flow.notifyDrain()
  }
}
