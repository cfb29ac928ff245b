/**
 * The handler's side of a WebSocket, in the worker: `context.upgradeWebSocket(request)`
 * returns `{ socket, response }` as Deno's does; the handler returns `response` (status 101)
 * and talks through `socket`, a standard WebSocket-shaped EventTarget (onopen, onmessage,
 * onclose, onerror, send, close, readyState, bufferedAmount, binaryType, protocol, url).
 *
 * Underneath, the stream that carried the upgrade is a record stream (docs/protocol.md §7.1):
 * the request body brings the client's records (read through the body's pull, so credit
 * goes back to the front only as messages are dispatched), and the socket's sends are
 * response-body chunks under the loop's CREDIT flow control. bufferedAmount is what was sent
 * and not yet taken by the client side; `bufferedamountlow` (as RTCDataChannel's, below
 * `bufferedAmountLowThreshold`) tells a sender when to go on.
 */
import {
  decodeWsClose, encodeWsClose, encodeWsRecord, type FerryError, isValidCloseCode, WsClose, WsOp, WsRecordDecoder,
  wsRecordPieces
} from '@ferry/protocol/core'
import type { BodySource } from './request.js'

/** What the socket needs from its loop job. */
export interface WsLink {
  /** Response-body credit left (the loop's job.credit). */
  credit (): number
  /** A record (or part) out as a response-body chunk; spends credit. */
  push (bytes: Uint8Array): void
}

export interface UpgradeOptions {
  /** The subprotocol chosen from the client's Sec-WebSocket-Protocol list. */
  protocol?: string
  /** Extra headers for the 101 (e.g. set-cookie). */
  headers?: ConstructorParameters<typeof Headers>[0]
}

const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3

export class CloseEvent extends Event {
  readonly code: number
  readonly reason: string
  readonly wasClean: boolean
  constructor (type: string, init: { code?: number, reason?: string, wasClean?: boolean } = {}) {
    super(type)
    this.code = init.code ?? 0
    this.reason = init.reason ?? ''
    this.wasClean = init.wasClean ?? false
  }
}

type Handler = ((ev: Event) => unknown) | null

export class FerryWebSocket extends EventTarget {
  static readonly CONNECTING = CONNECTING
  static readonly OPEN = OPEN
  static readonly CLOSING = CLOSING
  static readonly CLOSED = CLOSED
  readonly CONNECTING = CONNECTING
  readonly OPEN = OPEN
  readonly CLOSING = CLOSING
  readonly CLOSED = CLOSED
  readonly url: string
  readonly extensions = ''
  protocol = ''
  readyState: number = CONNECTING
  /** 'arraybuffer' (the default here: a server rarely wants Blobs) or 'blob'. */
  binaryType: 'arraybuffer' | 'blob' = 'arraybuffer'
  bufferedAmountLowThreshold = 0
  #link: WsLink | null = null
  #queue: Uint8Array[] = []
  #queued = 0
  /** Bytes pushed but not credited back yet (the loop's window minus its credit). */
  #window: number
  #closeSent = false
  #closeCode: number = WsClose.ABNORMAL
  #closeReason = ''
  #closeFired = false
  #pendingClose: { code: number, reason: string } | null = null
  #wasLow = true
  /** Blob sends in flight: later sends wait behind them (order is kept). */
  #blobChain: Promise<void> | null = null
  #handlers: Record<string, Handler> = { open: null, message: null, close: null, error: null, bufferedamountlow: null, pong: null }

  constructor (url: string, window: number) {
    super()
    this.url = url.replace(/^http/, 'ws')
    this.#window = window
  }

  get onopen (): Handler { return this.#handlers.open! }
  set onopen (h: Handler) { this.#setHandler('open', h) }
  get onmessage (): Handler { return this.#handlers.message! }
  set onmessage (h: Handler) { this.#setHandler('message', h) }
  get onclose (): Handler { return this.#handlers.close! }
  set onclose (h: Handler) { this.#setHandler('close', h) }
  get onerror (): Handler { return this.#handlers.error! }
  set onerror (h: Handler) { this.#setHandler('error', h) }
  get onbufferedamountlow (): Handler { return this.#handlers.bufferedamountlow! }
  set onbufferedamountlow (h: Handler) { this.#setHandler('bufferedamountlow', h) }

  #setHandler (type: string, h: Handler): void {
    const prev = this.#handlers[type]
    if (prev != null) this.removeEventListener(type, prev)
    this.#handlers[type] = typeof h === 'function' ? h : null
    if (typeof h === 'function') this.addEventListener(type, h)
  }

  /** Bytes sent and not yet taken by the client's side (queued here, or in flight within the window). */
  get bufferedAmount (): number {
    if (this.#link === null) return this.#queued
    return this.#window - this.#link.credit() + this.#queued
  }

  send (data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.readyState === CONNECTING) throw new DOMException('WebSocket is not open yet', 'InvalidStateError')
    if (this.readyState !== OPEN || this.#closeSent) return
    if (typeof Blob !== 'undefined' && data instanceof Blob) {
      const prev = this.#blobChain ?? Promise.resolve()
      const next = prev.then(() => data.arrayBuffer()).then((ab) => { this.#record(WsOp.BINARY, new Uint8Array(ab)) })
      this.#blobChain = next
      next.finally(() => { if (this.#blobChain === next) this.#blobChain = null }).catch(() => {})
      return
    }
    if (this.#blobChain !== null) {
      const bytes = typeof data === 'string' ? data : toBytes(data as ArrayBufferLike | ArrayBufferView)
      this.#blobChain = this.#blobChain.then(() => { this.#record(typeof bytes === 'string' ? WsOp.TEXT : WsOp.BINARY, bytes) })
      return
    }
    if (typeof data === 'string') this.#record(WsOp.TEXT, data)
    else this.#record(WsOp.BINARY, toBytes(data as ArrayBufferLike | ArrayBufferView))
  }

  /** Not in the browser API: a ping to the client; its pong arrives as a 'pong' event. */
  ping (data: string | Uint8Array = ''): void {
    if (this.readyState !== OPEN) throw new DOMException('WebSocket is not open', 'InvalidStateError')
    const b = typeof data === 'string' ? Buffer.from(data) : data
    if (b.byteLength > 125) throw new DOMException('ping payload over 125 bytes', 'SyntaxError')
    this.#out(encodeWsRecord(WsOp.PING, b))
  }

  close (code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
      throw new DOMException(`close code ${code} is not 1000 or 3000-4999`, 'InvalidAccessError')
    }
    const r = reason ?? ''
    if (Buffer.byteLength(r) > 123) throw new DOMException('close reason over 123 bytes', 'SyntaxError')
    this.#close(code ?? WsClose.NO_STATUS, r)
  }

  #close (code: number, reason: string): void {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return
    if (this.readyState === CONNECTING) {
      // closed before the handler returned its response: the close goes right after the 101
      this.#pendingClose = { code, reason }
      return
    }
    this.readyState = CLOSING
    this.#sendClose(code, reason)
  }

  #sendClose (code: number, reason: string): void {
    if (this.#closeSent) return
    this.#closeSent = true
    this.#out(encodeWsClose(code, reason))
  }

  #record (op: number, payload: Uint8Array | string): void {
    // a view is copied into a buffer of its own where it goes out (the loop's ownBytes())
    for (const piece of wsRecordPieces(op, typeof payload === 'string' ? Buffer.from(payload) : payload)) this.#out(piece)
  }

  #out (bytes: Uint8Array): void {
    const link = this.#link
    if (link !== null && this.#queue.length === 0 && link.credit() > 0) link.push(bytes)
    else {
      this.#queue.push(bytes)
      this.#queued += bytes.byteLength
    }
    if (this.bufferedAmount > this.bufferedAmountLowThreshold) this.#wasLow = false
  }

  // ── driven by the loop ─────────────────────────────────────────────────────

  /** The 101 went out: open, and from now on records flow. */
  open (link: WsLink): void {
    this.#link = link
    this.readyState = OPEN
    this.dispatchEvent(new Event('open'))
    const pc = this.#pendingClose
    if (pc !== null) {
      this.#pendingClose = null
      this.#close(pc.code, pc.reason)
    }
    this.credited()
  }

  /** The loop got CREDIT: send what waited. */
  credited (): void {
    const link = this.#link
    if (link === null) return
    while (this.#queue.length > 0 && link.credit() > 0) {
      const b = this.#queue.shift()!
      this.#queued -= b.byteLength
      link.push(b)
    }
    if (!this.#wasLow && this.bufferedAmount <= this.bufferedAmountLowThreshold) {
      this.#wasLow = true
      this.dispatchEvent(new Event('bufferedamountlow'))
    }
  }

  /**
   * Read the client's records until the front ends the stream. Resolves when the socket is
   * closed both ways; the loop then ends the response.
   */
  async run (body: BodySource, maxMessage: number): Promise<void> {
    let broken: FerryError | null = null
    const decoder = new WsRecordDecoder(maxMessage, (op, payload) => this.#onRecord(op, payload))
    try {
      for (;;) {
        const chunk = await body.read()
        if (chunk === null) break
        if (broken !== null) continue
        try {
          decoder.push(chunk)
        } catch (e) {
          broken = e as FerryError
          this.dispatchEvent(new Event('error'))
          this.#closeCode = broken.code === 'FERRY_ERR_WS_TOO_LARGE' ? WsClose.TOO_BIG : WsClose.PROTOCOL_ERROR
          this.#closeReason = broken.code === 'FERRY_ERR_WS_TOO_LARGE' ? 'message too big' : 'bad record'
          if (this.readyState === OPEN) this.readyState = CLOSING
          this.#sendClose(this.#closeCode, this.#closeReason)
        }
      }
      this.#fireClose(this.#closeCode, this.#closeReason, this.#closeSent && this.#closeCode !== WsClose.ABNORMAL && broken === null)
    } catch {
      // the stream was cancelled (client gone, node shutting down): abnormal closure
      this.#fireClose(WsClose.ABNORMAL, '', false)
      throw new Error('websocket stream cancelled')
    }
  }

  #onRecord (op: number, payload: Buffer): void {
    switch (op) {
      case WsOp.TEXT:
        if (this.readyState === OPEN) this.dispatchEvent(new MessageEvent('message', { data: payload.toString('utf8') }))
        return
      case WsOp.BINARY:
        if (this.readyState !== OPEN) return
        this.dispatchEvent(new MessageEvent('message', {
          data: this.binaryType === 'blob' ? new Blob([payload]) : payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength)
        }))
        return
      case WsOp.PING:
        if (!this.#closeSent) this.#out(encodeWsRecord(WsOp.PONG, payload))
        return
      case WsOp.PONG:
        this.dispatchEvent(Object.assign(new Event('pong'), { data: Buffer.from(payload) }))
        return
      case WsOp.CLOSE: {
        const { code, reason } = decodeWsClose(payload)
        this.#closeCode = code
        this.#closeReason = reason
        if (this.readyState === OPEN) {
          this.readyState = CLOSING
          // echo the code (RFC 6455 §5.5.1); a code a peer may not send is answered with 1000
          this.#sendClose(code === WsClose.NO_STATUS ? WsClose.NO_STATUS : isValidCloseCode(code) ? code : WsClose.NORMAL, '')
        }
        this.#fireClose(code, reason, true)
      }
    }
  }

  #fireClose (code: number, reason: string, wasClean: boolean): void {
    this.readyState = CLOSED
    if (this.#closeFired) return
    this.#closeFired = true
    this.dispatchEvent(new CloseEvent('close', { code, reason, wasClean }))
  }

  /** Close from the server side with any code (node shutting down: 1001). */
  shutdown (code: number, reason: string): void {
    this.#close(code, reason)
  }

  /** The handler never returned this socket's response: nothing opened; quietly closed. */
  abandon (): void {
    this.readyState = CLOSED
  }
}

function toBytes (data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return new Uint8Array(data)
}

const kUpgradeResponse = Symbol('ferry.upgradeResponse')

/** The 101 response a handler returns: `instanceof Response` holds; ferry reads it, nothing else should. */
export function upgradeResponse (headers: string[]): Response {
  const r = Object.create(Response.prototype) as Response & { [kUpgradeResponse]: string[] }
  const h = new Headers()
  for (let i = 0; i < headers.length; i += 2) h.append(headers[i]!, headers[i + 1]!)
  Object.defineProperties(r, {
    status: { value: 101 },
    statusText: { value: 'Switching Protocols' },
    ok: { value: false },
    headers: { value: h },
    body: { value: null },
    bodyUsed: { value: false },
    redirected: { value: false },
    type: { value: 'default' },
    url: { value: '' },
    [kUpgradeResponse]: { value: headers }
  })
  return r
}

/** The 101 head's headers when `res` is an upgrade response, else null. */
export function upgradeHeaders (res: unknown): string[] | null {
  return res !== null && typeof res === 'object' && kUpgradeResponse in res ? (res as { [kUpgradeResponse]: string[] })[kUpgradeResponse] : null
}
