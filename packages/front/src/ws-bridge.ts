/**
 * One WebSocket between a client and an app node, after the node answered the upgrade with
 * 101. The client side is a `ws` WebSocket (handshake, framing, masking, UTF-8 checks,
 * fragment joining, close timers: the `ws` package's job); the node side is the native stream
 * that carried the upgrade, now a stream of records (docs/protocol.md §7.1).
 *
 * Flow control both ways, so no side fills memory:
 *  - client → node: a record goes out with stream.write(); when that returns false the
 *    client's socket is paused (ws.pause()) until the stream drains.
 *  - node → client: the stream's credit for a chunk of records is returned only once the
 *    client's socket took the bytes (at once, or on the socket's 'drain'): a client that
 *    does not read stops the node after one stream window. Credit goes per chunk, not per
 *    whole record, so a message larger than the window still arrives.
 *
 * Close: a client's close frame (or a dropped connection) becomes a close record and
 * END_STREAM (a dropped connection: RESET CANCEL, which the handler sees as 1006); a node's
 * close record becomes ws.close(code, reason). A node whose stream breaks makes the client's
 * socket close with 1012 (the node's connection was lost: restart/death) or 1011 (reset by
 * the node: handler error, worker crash).
 */
import type { Socket } from 'node:net'
import {
  decodeWsClose, encodeWsClose, type FerryError, isValidCloseCode, ResetCode, type Stream, WsClose, WsOp,
  WsRecordDecoder, wsRecordPieces
} from '@ferry/protocol'
import type { WebSocket } from 'ws'
import type { AccessLogger } from './access-log.js'

/** What a bridge needs from the Forwarder. */
export interface BridgeHost {
  readonly wsMaxMessage: number
  bridgeClosed (b: WsBridge): void
}

const OPEN = 1

export class WsBridge {
  readonly stream: Stream
  readonly socket: Socket
  readonly requestId: string
  readonly upstream: string
  readonly #host: BridgeHost
  readonly #log: AccessLogger
  readonly #decoder: WsRecordDecoder
  ws: WebSocket | null = null
  /** Date.now() of the last frame either way (the Forwarder's idle sweep reads it). */
  lastActivity = Date.now()
  /** The client's side is over (close frame seen or connection gone); upstream was told. */
  #clientDone = false
  #done = false
  /** Node → client bytes written to a backed-up client socket, credit not yet returned. */
  #owed = 0
  #drainHooked = false

  constructor (host: BridgeHost, stream: Stream, socket: Socket, requestId: string, upstream: string, log: AccessLogger) {
    this.#host = host
    this.stream = stream
    this.socket = socket
    this.requestId = requestId
    this.upstream = upstream
    this.#log = log
    this.#decoder = new WsRecordDecoder(host.wsMaxMessage, (op, payload) => this.#onRecord(op, payload))
    stream.userData = this
    stream.manualConsume = true
    stream.onData = onStreamData
    stream.onEnd = onStreamEnd
    stream.onError = onStreamError
    stream.onDrain = onStreamDrain
  }

  /** The client's handshake completed: wire the client's events. */
  attach (ws: WebSocket): void {
    this.ws = ws
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#toNode(isBinary ? WsOp.BINARY : WsOp.TEXT, data))
    ws.on('ping', (data: Buffer) => this.#toNode(WsOp.PING, data))
    ws.on('pong', (data: Buffer) => this.#toNode(WsOp.PONG, data))
    ws.on('close', (code: number, reason: Buffer) => this.#clientClosed(code, reason))
    ws.on('error', (err: Error & { code?: string }) => {
      this.#log.warn({ reqId: this.requestId, upstream: this.upstream, code: err.code, err: err.message }, 'websocket client error')
    })
  }

  // ── client → node ──────────────────────────────────────────────────────────

  #toNode (op: number, payload: Buffer): void {
    this.lastActivity = Date.now()
    const s = this.stream
    if (s.closed || s.localEnded) return
    let ok = true
    for (const piece of wsRecordPieces(op, payload)) ok = s.write(piece) && ok
    if (!ok) this.ws?.pause()
  }

  #clientClosed (code: number, reason: Buffer): void {
    if (this.#clientDone) return
    this.#clientDone = true
    const s = this.stream
    // no close frame: the connection dropped; the handler sees 1006
    if (code === WsClose.ABNORMAL) {
      if (!s.closed && !s.localEnded) s.reset(ResetCode.CANCEL, 'client connection lost')
    } else this.#closeNode(code, reason.toString())
    this.#maybeDone()
  }

  // ── node → client ──────────────────────────────────────────────────────────

  onData (chunk: Buffer): void {
    try {
      this.#decoder.push(chunk)
    } catch (e) {
      const err = e as FerryError
      this.#log.warn({ reqId: this.requestId, upstream: this.upstream, code: err.code, err: err.message }, 'websocket record from the node refused')
      this.stream.reset(ResetCode.CANCEL, err.message)
      this.#closeClient(err.code === 'FERRY_ERR_WS_TOO_LARGE' ? WsClose.TOO_BIG : WsClose.INTERNAL_ERROR, err.code === 'FERRY_ERR_WS_TOO_LARGE' ? 'message too big' : 'bad record from the server')
      this.#clientDone = true
      this.#maybeDone()
      return
    }
    // Credit per chunk, not per record: a record larger than the stream window (up to
    // --ws-max-message) must be able to arrive whole. The bytes of a record still being
    // joined are held by the decoder (bounded by --ws-max-message), so their credit goes
    // back at once unless the client's socket is backed up; then it waits for 'drain'.
    const ws = this.ws
    if (ws !== null && ws.readyState === OPEN && this.socket.writableNeedDrain) {
      this.#owed += chunk.length
      if (!this.#drainHooked) {
        this.#drainHooked = true
        this.socket.once('drain', () => this.#socketDrained())
      }
    } else this.stream.consume(chunk.length)
  }

  #onRecord (op: number, payload: Buffer): void {
    this.lastActivity = Date.now()
    const ws = this.ws
    if (ws === null || ws.readyState !== OPEN) return
    switch (op) {
      case WsOp.TEXT:
      case WsOp.BINARY:
        ws.send(payload, { binary: op === WsOp.BINARY })
        return
      case WsOp.PING:
        ws.ping(payload)
        break
      case WsOp.PONG:
        ws.pong(payload)
        break
      case WsOp.CLOSE: {
        const { code, reason } = decodeWsClose(payload)
        if (code === WsClose.NO_STATUS) ws.close()
        else ws.close(isValidCloseCode(code) ? code : WsClose.INTERNAL_ERROR, reason)
        break
      }
    }
  }

  #socketDrained (): void {
    this.#drainHooked = false
    const n = this.#owed
    this.#owed = 0
    if (n > 0) this.stream.consume(n)
  }

  onEnd (): void {
    // The node ended its side: after its close record normally; without one, the socket
    // cannot go on either.
    if (!this.#clientDone) this.#closeClient(WsClose.INTERNAL_ERROR, 'server ended the stream')
    this.#maybeDone()
  }

  onError (err: FerryError): void {
    if (!this.#clientDone) {
      const lost = err.code === 'FERRY_ERR_SESSION_CLOSED' || err.code === 'FERRY_ERR_GOAWAY'
      this.#log.warn({ reqId: this.requestId, upstream: this.upstream, code: err.code, err: err.message }, 'websocket stream to the node broke')
      this.#closeClient(lost ? WsClose.SERVICE_RESTART : WsClose.INTERNAL_ERROR, lost ? 'service restart' : 'server error')
      this.#clientDone = true
    }
    this.#maybeDone()
  }

  onDrain (): void {
    this.ws?.resume()
  }

  // ── both ───────────────────────────────────────────────────────────────────

  #closeClient (code: number, reason: string): void {
    const ws = this.ws
    if (ws === null) {
      this.socket.destroy()
      return
    }
    if (ws.readyState === OPEN) ws.close(code, reason)
  }

  /**
   * Close both sides with `code` (front shutdown: 1001; idle timeout): the client gets a
   * close frame, the node a close record and END_STREAM.
   */
  close (code: number, reason: string): void {
    if (this.#done) return
    this.#closeNode(code, reason)
    this.#clientDone = true
    this.#closeClient(code, reason)
    this.#maybeDone()
  }

  /** Our close record and END_STREAM to the node (unless our side of the stream is over). */
  #closeNode (code: number, reason: string): void {
    const s = this.stream
    if (s.closed || s.localEnded) return
    s.write(encodeWsClose(code, reason))
    s.end()
  }

  #maybeDone (): void {
    if (this.#done || !this.#clientDone) return
    if (!this.stream.closed && !this.stream.remoteEnded) return
    this.#done = true
    this.#host.bridgeClosed(this)
  }
}

function onStreamData (this: Stream, chunk: Buffer): void {
  (this.userData as WsBridge).onData(chunk)
}

function onStreamEnd (this: Stream): void {
  (this.userData as WsBridge).onEnd()
}

function onStreamError (this: Stream, err: FerryError): void {
  (this.userData as WsBridge).onError(err)
}

function onStreamDrain (this: Stream): void {
  (this.userData as WsBridge).onDrain()
}
