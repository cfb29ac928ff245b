/**
 * A native ferry connection over any Duplex: multiplexed streams, per-stream and
 * per-connection flow control, RESET, GOAWAY drain and close. Shared by the front (role
 * 'client') and the app-server (role 'server'). Contract: docs/dev/session-api.md; bytes:
 * docs/protocol.md.
 *
 * Its parts live beside it: the HELLO exchange, limits and shared-secret auth in
 * session-hello.ts; the stream table, stream ids and the stream state machine (HEADERS,
 * DATA, RESET, WINDOW_UPDATE on a stream) in session-streams.ts; credit windows both ways,
 * DATA sending and 'drain' in session-flow.ts; the batching frame writer in
 * session-writer.ts; PING with RTT in session-ping.ts. This file keeps the connection: the
 * socket, preface, frame dispatch, HELLO, GOAWAY (both ways, the server's two-phase drain)
 * and close.
 */
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { ferry } from '../gen/ferry.js'
import { DEFAULT_LIMITS, Flags, FrameType, MAX_STREAM_ID, PREFACE, ResetCode } from './constants.js'
import { type FerryError, isFerryError, protocolError } from './errors.js'
import { encodeSmallFrame, FrameDecoder } from './frame.js'
import { encodeRequestHeadView, encodeResponseHeadView } from './head.js'
import { Handshake, resolveLimits, validateLimits } from './session-hello.js'
import { FlowControl } from './session-flow.js'
import { Pings } from './session-ping.js'
import { Streams } from './session-streams.js'
import { FrameWriter } from './session-writer.js'
import type { Stream, StreamOwner } from './stream.js'
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
  /** Server: more addresses of this node, one per thread serving on its own (HELLO `endpoints`). */
  endpoints?: readonly string[]
  /** ms to wait for the peer's HELLO (default 10000). */
  helloTimeout?: number
  /** ms before ping() rejects (default 10000). */
  pingTimeout?: number
  /** Server: bytes already read from the socket (the sniffed first chunk). */
  initialData?: Buffer
  /**
   * Client: the id of its first stream (odd; default 1). Stream ids are never reused, so a
   * connection carries at most 2^30 requests (a day at 12k req/s), then refuses new ones
   * (FERRY_ERR_GOAWAY, 'stream ids exhausted'); `streamIdsLeft` says how near that is. Starting
   * high reaches that end quickly (tests, and ferry front's FERRY_FIRST_STREAM_ID).
   */
  firstStreamId?: number
}

/** Why `n` cannot be a client's first stream id (SessionOptions.firstStreamId), or null when it can. */
export function firstStreamIdError (n: number): string | null {
  return Number.isInteger(n) && n >= 1 && n <= MAX_STREAM_ID && n % 2 === 1 ? null : `firstStreamId must be an odd integer from 1 to ${MAX_STREAM_ID}: ${n}`
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
  /** Client: the per-thread addresses the server's HELLO announced (empty when none). */
  peerEndpoints: readonly string[] = []
  ready = false
  closed = false
  goingAway = false

  #socket: Duplex
  #options: SessionOptions
  #decoder: FrameDecoder
  #streams: Streams
  #prefaceLeft: number
  #helloTimer: NodeJS.Timeout | null = null
  #handshake: Handshake
  #writer: FrameWriter
  #pings: Pings

  #flow: FlowControl

  #goawaySent = false
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
    const first = options.firstStreamId ?? 1
    const bad = firstStreamIdError(first)
    if (bad !== null) throw new RangeError(bad)
    this.#streams = new Streams(this, this.role === 'client', this.localLimits, this.#writer, this.#flow, () => this.#maybeEnd(), first)
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

  /** PINGs the peer sent us (not ACKs), answered. */
  get pingsReceived (): number { return this.#pings.received }

  get socket (): Duplex { return this.#socket }
  get socketBlocked (): boolean { return this.#writer.blocked }
  /** The peer's GOAWAY, if one arrived. */
  get peerGoaway (): GoAwayInfo | null { return this.#peerGoaway }
  /** Streams open now (O(1)). */
  get openStreams (): number { return this.#streams.open }

  /** Client: streams it can still open before its ids run out (see SessionOptions.firstStreamId). */
  get streamIdsLeft (): number { return this.#streams.idsLeft }

  // ── public API ─────────────────────────────────────────────────────────────

  /** Client: open a stream carrying a request. Wait for 'ready' first. */
  request (head: RequestHead, endStream: boolean): Stream {
    if (this.role !== 'client') throw new Error('request() is for client sessions')
    if (this.closed) throw protocolError('FERRY_ERR_SESSION_CLOSED')
    if (this.goingAway) throw protocolError('FERRY_ERR_GOAWAY')
    if (!this.#streams.canOpen()) {
      this.goaway(ResetCode.NO_ERROR, 'stream ids exhausted')
      throw protocolError('FERRY_ERR_GOAWAY', 'stream ids exhausted')
    }
    const payload = encodeRequestHeadView(head)
    if (payload.length > this.peerLimits.maxHeadBytes) {
      throw protocolError('FERRY_ERR_HEAD_TOO_LARGE', `${payload.length} > ${this.peerLimits.maxHeadBytes}`)
    }
    const stream = this.#streams.openLocal(endStream)
    this.#writer.frame(FrameType.HEADERS, endStream ? Flags.END_STREAM : 0, stream.id, payload)
    return stream
  }

  /** Measure round-trip time to the peer, in milliseconds. */
  ping (): Promise<number> {
    if (this.closed) return Promise.reject(protocolError('FERRY_ERR_SESSION_CLOSED'))
    return this.#pings.ping(this.#options.pingTimeout ?? 10000)
  }

  /**
   * A health check: PING the peer, unless it sent something since the last check — then its
   * event loop is alive and this returns null. The PING's own ACK is a read too, so the mark
   * moves past it when it is answered.
   */
  pingIfQuiet (): Promise<number> | null {
    if (this.#readsAtCheck >= 0 && this.#reads !== this.#readsAtCheck) {
      this.#readsAtCheck = this.#reads
      return null
    }
    return this.ping().then((ms) => {
      this.#readsAtCheck = this.#reads
      return ms
    })
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
      const lastStreamId = this.role === 'server' ? this.#streams.lastPeerId : 0
      this.#streams.refuseAbove(lastStreamId)
      this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({ lastStreamId, code, message }).finish())
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
      const lastStreamId = this.#streams.lastPeerId
      this.#streams.refuseAbove(lastStreamId)
      this.#writer.control(FrameType.GOAWAY, 0, ferry.GoAway.encode({ lastStreamId, code: ResetCode.NO_ERROR, message }).finish())
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
    if (endStream) this.#streams.maybeClose(stream)
  }

  sendData (stream: Stream): void {
    if (this.#flow.send(stream)) this.#streams.maybeClose(stream)
  }

  sendReset (stream: Stream, code: number, message: string): void {
    this.#writer.control(FrameType.RESET, stream.id, ferry.Reset.encode({ code, message }).finish())
    this.#streams.close(stream)
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
  /** Socket reads that carried bytes from the peer, and their count at the last health check (-1: none yet). */
  #reads = 0
  #readsAtCheck = -1

  #drainInitialData (): void {
    const first = this.#initialData
    if (first === null) return
    this.#initialData = null
    this.#onSocketData(first)
  }

  #onSocketData (chunk: Buffer): void {
    this.#reads++
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
      case FrameType.DATA: this.#streams.onData(flags, id, payload); break
      case FrameType.HEADERS:
        if (this.role === 'server') this.#streams.onRequestHeaders(flags, id, payload)
        else this.#streams.onResponseHeaders(flags, id, payload)
        break
      case FrameType.RESET: this.#streams.onReset(id, payload); break
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
    this.peerEndpoints = peer.endpoints
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
    // Client: streams above the last id were never processed: fail them as safe to retry.
    if (this.role === 'client') this.#streams.failAbove(info.lastStreamId)
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
    if (id === 0) this.#flow.connectionUpdate(inc)
    else this.#streams.onWindowUpdate(id, inc)
  }

  // ── connection lifecycle ───────────────────────────────────────────────────

  /** After GOAWAY (either way) and once no stream is open: end the socket gracefully. */
  #maybeEnd (): void {
    if (!this.goingAway || this.#goawayPending || this.#streams.open > 0 || this.closed || this.#ending) return
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
        lastStreamId: this.role === 'server' ? this.#streams.lastPeerId : 0,
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
    this.#streams.failAll(streamErr)
    this.#pings.rejectAll()
    if (!this.#socket.destroyed) {
      this.#socket.end()
      this.#destroyTimer = setTimeout(() => this.#socket.destroy(), 1000).unref()
    }
  }

  #onSocketError (err: Error): void {
    this.#socketError = err
  }

  #socketError: Error | null = null

  #onSocketEnd (): void {
    // Peer sent FIN. Streams still open cannot complete.
    if (this.#streams.open > 0 && !this.closed) {
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
      this.#streams.failAll(protocolError('FERRY_ERR_SESSION_CLOSED', detail, { cause: this.#socketError ?? undefined }))
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
