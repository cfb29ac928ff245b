/**
 * The handler's second argument (HandlerContext) and the class the worker loop makes it
 * from, one per request: ids and addresses, the mount prefix, a lazily made child logger,
 * waitUntil, and upgradeWebSocket (which reaches the loop's job through kJob).
 */
import { threadId } from 'node:worker_threads'
import type { Logger } from 'pino'
import { appError } from './errors.js'
import { RESPONSE_WINDOW } from './messages.js'
import { FerryWebSocket, type UpgradeOptions, upgradeResponse } from './ws-socket.js'

/** What a handler receives as its second argument. */
export interface HandlerContext {
  requestId: string
  remoteAddress: string
  remotePort: number
  threadId: number
  /**
   * The mount prefix this request came under ('' for the root mount): WSGI's SCRIPT_NAME.
   * request.url holds the path below it (the prefix removed, at least '/').
   */
  scriptName: string
  /** Request body length: 0 none, N exact, -1 streamed (length unknown until its end). */
  bodyLength: number
  /** The URL as the client sent it, prefix included (the same string as request.url at the root mount). */
  originalUrl: string
  /** A pino child logger carrying reqId (created on first use). */
  readonly log: Logger
  /** Keep the worker busy with this promise after the response (logged if it rejects). */
  waitUntil (promise: Promise<unknown>): void
  /**
   * Accept a WebSocket upgrade (Deno's API): return `response` from the handler and talk
   * through `socket`. Throws TypeError when the request is not a WebSocket upgrade, and
   * FERRY_ERR_APP_WS_UNSUPPORTED (501) when it came over uwsgi, which cannot carry one.
   */
  upgradeWebSocket (request: Request, options?: UpgradeOptions): { socket: FerryWebSocket, response: Response }
}

/** Where a context finds the WebSocket state of its request (the loop's job). */
export const kJob = Symbol('ferry.job')

/** What upgradeWebSocket() needs of the loop's job: its socket slot. */
export interface WsSlot {
  ws: FerryWebSocket | null
}

/**
 * The handler's context. A class (log a getter on the prototype), not an object literal with
 * `get log ()` closing over per-request state: that literal gives every request a fresh
 * accessor pair (and so its own map), and measured in the loop alone it made ~3 MB survive
 * every scavenge (0.1 MB without it; the exact V8 retention path was not traced).
 * `waitUntil` stays an own closure: the loop passes it on unbound (ctx.waitUntil).
 */
export class Context implements HandlerContext {
  requestId: string
  remoteAddress: string
  remotePort: number
  threadId: number = threadId
  scriptName: string
  bodyLength: number
  originalUrl: string
  waitUntil: (promise: Promise<unknown>) => void
  #root: Logger
  #child: Logger | null = null
  /** Set for a request this node may upgrade (REQ_WS); null otherwise. */
  ;[kJob]: WsSlot | null = null

  constructor (requestId: string, remoteAddress: string, remotePort: number, scriptName: string, bodyLength: number, originalUrl: string, root: Logger, pending: Promise<unknown>[]) {
    this.requestId = requestId
    this.remoteAddress = remoteAddress
    this.remotePort = remotePort
    this.scriptName = scriptName
    this.bodyLength = bodyLength
    this.originalUrl = originalUrl
    this.#root = root
    this.waitUntil = (p: Promise<unknown>): void => {
      pending.push(Promise.resolve(p).catch((err: unknown) => this.log.error({ err }, 'waitUntil promise rejected')))
    }
  }

  get log (): Logger {
    if (this.#child === null) this.#child = this.#root.child({ reqId: this.requestId })
    return this.#child
  }

  upgradeWebSocket (request: Request, options: UpgradeOptions = {}): { socket: FerryWebSocket, response: Response } {
    if ((request.headers.get('upgrade') ?? '').toLowerCase() !== 'websocket') {
      throw new TypeError("not a WebSocket upgrade request: the 'upgrade' header must be 'websocket'")
    }
    const job = this[kJob]
    if (job === null) throw appError('FERRY_ERR_APP_WS_UNSUPPORTED', 'this request came over uwsgi, which cannot carry a WebSocket')
    if (job.ws !== null) throw new TypeError('upgradeWebSocket() was already called for this request')
    const socket = new FerryWebSocket(request.url, RESPONSE_WINDOW)
    const headers: string[] = []
    if (options.protocol !== undefined) {
      const offered = (request.headers.get('sec-websocket-protocol') ?? '').split(',').map((p) => p.trim())
      if (!offered.includes(options.protocol)) throw new TypeError(`protocol ${JSON.stringify(options.protocol)} was not offered by the client`)
      socket.protocol = options.protocol
      headers.push('sec-websocket-protocol', options.protocol)
    }
    if (options.headers !== undefined) for (const [k, v] of new Headers(options.headers)) headers.push(k, v)
    job.ws = socket
    return { socket, response: upgradeResponse(headers) }
  }
}
