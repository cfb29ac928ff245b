/**
 * One forwarded request: picks a node, opens a stream (native) or a connection (uwsgi),
 * streams the request body up and the response down with backpressure both ways, retries
 * once on another node when that is safe, and answers errors with a status and the request id.
 *
 * Hot path notes: one Exchange object per request and no closures — the stream's callbacks
 * and the request/response listeners are shared functions that find their Exchange through
 * `stream.userData` or a symbol on the Node object.
 */
import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import type { Socket } from 'node:net'
import { type FerryError, type RequestHead, ResetCode, type ResponseHead, type Stream } from '@ferry/protocol'
import { frontError } from './errors.js'
import { type ClientRequest, RESPONSE_HOP_BY_HOP } from './head.js'
import type { UpstreamNode } from './node.js'
import type { UpstreamPool, Waiter } from './pool.js'
import { UwsgiCall } from './uwsgi-call.js'

export type ClientResponse = ServerResponse | Http2ServerResponse

/** A request in flight on a connection of its own (uwsgi nodes). */
export interface UpstreamCall {
  write (chunk: Buffer): boolean
  endBody (): void
  /** The client drained: read from upstream again. */
  resume (): void
  destroy (): void
}

export interface Target {
  pool: UpstreamPool
  /** Response head timeout, ms (nginx proxy_read_timeout before the first byte). */
  timeout: number
  /** Longest pause in either direction once bytes flow, ms. */
  idleTimeout: number
}

/** A WebSocket upgrade request: the client's socket and the bytes read past its head. */
export interface Upgrade {
  socket: Socket
  head: Buffer
}

export interface AccessLogger {
  info (obj: Record<string, unknown>, msg: string): void
  warn (obj: Record<string, unknown>, msg: string): void
}

/** What an Exchange needs from its Forwarder. */
export interface ExchangeHost {
  readonly maxBody: number
  readonly retry: boolean
  readonly accessLog: boolean
  readonly retryAfter: string
  /** SERVER_NAME for uwsgi nodes: the configured name, or '' as nginx sends without server_name. */
  readonly uwsgiServerName: string
  track (ex: Exchange): void
  untrack (ex: Exchange): void
  /** The node accepted a WebSocket upgrade (101): complete the client's handshake. */
  upgraded (ex: Exchange, stream: Stream, head: ResponseHead): void
}

const kExchange = Symbol('ferry.exchange')
type Tagged<T> = T & { [kExchange]?: Exchange }

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

const State = { WAITING: 0, SENT: 1, RESPONDING: 2, DONE: 3 } as const

export class Exchange implements Waiter {
  readonly host: ExchangeHost
  readonly req: ClientRequest
  readonly res: ClientResponse
  readonly head: RequestHead
  readonly target: Target
  readonly log: AccessLogger
  readonly start = performance.now()
  readonly h2: boolean
  node: UpstreamNode | null = null
  /** The node a failed attempt used: the retry goes elsewhere. */
  excluded: UpstreamNode | null = null
  /** Why the first attempt failed (a retry that cannot start answers with it). */
  lastError: FerryError | null = null
  stream: Stream | null = null
  uwsgi: UpstreamCall | null = null
  state: number = State.WAITING
  attempts = 0
  waitUntil = 0
  /** Timeout clock (Date.now ms): head deadline, then idle deadline. */
  deadline = 0
  bodyStarted = false
  bodyBytes = 0
  bytesOut = 0
  /** Response bytes written to a backed-up client whose credit is still held. */
  unconsumed = 0
  drainHooked = false
  /** Declared response body length (-1 unknown). */
  expect = -1
  /** A whole small body held for res.end(body): one write for head + body. */
  held: Buffer | null = null
  status = 0
  code = ''
  /** Links of the host's in-flight list (ExchangeHost.track/untrack). */
  tracked = false
  prevActive: Exchange | null = null
  nextActive: Exchange | null = null
  /** Set for a WebSocket upgrade request (HTTP/1.1 only). */
  readonly upgrade: Upgrade | null

  constructor (host: ExchangeHost, req: ClientRequest, res: ClientResponse, head: RequestHead, target: Target, log: AccessLogger, upgrade: Upgrade | null = null) {
    this.host = host
    this.req = req
    this.res = res
    this.head = head
    this.target = target
    this.log = log
    this.h2 = req.httpVersionMajor === 2
    this.upgrade = upgrade
  }

  run (): void {
    ;(this.req as Tagged<ClientRequest>)[kExchange] = this
    const max = this.host.maxBody
    if (max > 0 && this.head.bodyLength > max) {
      this.fail(frontError('FERRY_ERR_FRONT_BODY_TOO_LARGE', `${this.head.bodyLength} > ${max} bytes`))
      return
    }
    ;(this.res as Tagged<ClientResponse>)[kExchange] = this
    this.res.on('close', onResClose)
    this.host.track(this)
    this.dispatch()
  }

  /** Pick a node and send the request; wait or fail when none can take it. */
  dispatch (): void {
    const pool = this.target.pool
    const exclude = this.excluded
    for (let guard = 0; guard < 8; guard++) {
      const node = pool.pick(exclude)
      if (node === null) {
        if (pool.shouldWait(exclude)) {
          this.waitUntil = Date.now() + pool.options.connectTimeout
          this.deadline = this.waitUntil + this.target.timeout
          if (!pool.wait(this)) this.fail(frontError('FERRY_ERR_FRONT_OVERLOADED', `${pool.options.maxWaiting} requests already waiting`))
          return
        }
        // A retry that finds no other node answers with the first attempt's error.
        this.fail(this.lastError ?? frontError('FERRY_ERR_FRONT_NO_HEALTHY_NODE', `pool ${pool.name}`))
        return
      }
      if (this.upgrade !== null && node.codec === 'uwsgi') {
        this.fail(frontError('FERRY_ERR_FRONT_WS_UNSUPPORTED', `${node.name} is a uwsgi node: the uwsgi protocol cannot carry a WebSocket`))
        return
      }
      if (node.codec === 'uwsgi') {
        this.#bind(node)
        const call = new UwsgiCall(this, node)
        if (this.state === State.DONE) return
        this.uwsgi = call
        this.#afterSend()
        return
      }
      const session = node.session()
      if (session === null) continue
      if (this.upgrade !== null && !session.peerFeatures.includes('websocket')) {
        this.fail(frontError('FERRY_ERR_FRONT_WS_UNSUPPORTED', `${node.name} did not announce the websocket feature`))
        return
      }
      let stream: Stream
      try {
        stream = session.request(this.head, this.head.bodyLength === 0)
      } catch (e) {
        const err = e as FerryError
        if (err.code === 'FERRY_ERR_HEAD_TOO_LARGE') {
          this.fail(frontError('FERRY_ERR_FRONT_HEAD_TOO_LARGE', err.message, { cause: err }))
          return
        }
        // GOAWAY / closed / stream limit on this session: the node's bookkeeping catches up
        // on its own events; try another session or node now.
        if (err.code === 'FERRY_ERR_GOAWAY' || err.code === 'FERRY_ERR_SESSION_CLOSED') {
          const i = node.sessions.indexOf(session)
          if (i >= 0) node.sessions.splice(i, 1)
        }
        continue
      }
      this.#bind(node)
      this.stream = stream
      stream.userData = this
      stream.manualConsume = true
      stream.onResponse = onStreamResponse
      stream.onData = onStreamData
      stream.onEnd = onStreamEnd
      stream.onError = onStreamError
      stream.onDrain = onStreamDrain
      this.#afterSend()
      return
    }
    this.fail(frontError('FERRY_ERR_FRONT_OVERLOADED', `pool ${pool.name}: every connection refused new streams`))
  }

  #bind (node: UpstreamNode): void {
    this.node = node
    node.outstanding++
    node.served++
    this.attempts++
    this.state = State.SENT
  }

  #afterSend (): void {
    this.deadline = Date.now() + this.target.timeout
    if (this.head.bodyLength !== 0 && !this.bodyStarted && this.upgrade === null) {
      this.bodyStarted = true
      const req = this.req
      req.on('data', onReqData)
      req.on('end', onReqEnd)
    }
  }

  // Waiter
  retry (): void {
    if (this.state === State.WAITING) this.dispatch()
  }

  abandon (err: FerryError): void {
    if (this.state === State.WAITING) this.fail(err)
  }

  /** Request body bytes from the client. */
  onBody (chunk: Buffer): void {
    this.bodyBytes += chunk.length
    const max = this.host.maxBody
    if (max > 0 && this.bodyBytes > max) {
      this.fail(frontError('FERRY_ERR_FRONT_BODY_TOO_LARGE', `more than ${max} bytes`))
      return
    }
    if (this.state !== State.RESPONDING) this.deadline = Date.now() + this.target.timeout
    if (this.stream !== null) {
      if (!this.stream.write(chunk)) this.req.pause()
    } else if (this.uwsgi !== null) {
      if (!this.uwsgi.write(chunk)) this.req.pause()
    }
  }

  onBodyEnd (): void {
    if (this.stream !== null) this.stream.end()
    else if (this.uwsgi !== null) this.uwsgi.endBody()
  }

  /** Upstream response head. */
  respond (head: ResponseHead, endStream: boolean): void {
    if (this.state === State.DONE) return
    if (head.status === 101 && this.upgrade !== null && !endStream && this.stream !== null) {
      // The node took the WebSocket: the exchange is over (access log: 101), the stream
      // now belongs to a WsBridge.
      const stream = this.stream
      this.stream = null
      this.status = 101
      this.finish()
      this.host.upgraded(this, stream, head)
      return
    }
    if (head.status < 200) {
      // No other 1xx is relayed: a stray one (or a 101 to a plain request) is the node's bug.
      this.#cancelUpstream(ResetCode.PROTOCOL_ERROR)
      this.fail(frontError('FERRY_ERR_FRONT_UPSTREAM_PROTOCOL', `${this.node?.name ?? ''}: status ${head.status} is not a final response`))
      return
    }
    this.state = State.RESPONDING
    this.status = head.status
    this.expect = head.bodyLength
    this.deadline = Date.now() + this.target.idleTimeout
    const res = this.res
    let h = head.headers
    let hasLength = false
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!
      if (RESPONSE_HOP_BY_HOP.has(name)) {
        h = stripHopByHop(h)
        break
      }
      if (name === 'content-length') hasLength = true
    }
    // head.headers is this response's own freshly decoded list: extended in place, not copied.
    if (!hasLength && head.bodyLength > 0) h.push('content-length', String(head.bodyLength))
    if (this.h2) (res as Http2ServerResponse).writeHead(head.status, toObject(h))
    else (res as ServerResponse).writeHead(head.status, h)
    if (endStream) {
      res.end()
      this.finish()
    }
  }

  /** Upstream response body bytes; returns true when the client took them at once. */
  body (chunk: Buffer): boolean {
    if (this.bytesOut === 0 && chunk.length === this.expect) {
      // The whole body in one chunk: END_STREAM is next; answer with res.end(body).
      this.bytesOut = chunk.length
      this.held = chunk
      return true
    }
    if (this.held !== null) {
      (this.res as ServerResponse).write(this.held)
      this.held = null
    }
    this.bytesOut += chunk.length
    this.deadline = Date.now() + this.target.idleTimeout
    if ((this.res as ServerResponse).write(chunk)) return true
    this.unconsumed += chunk.length
    if (!this.drainHooked) {
      this.drainHooked = true
      this.res.on('drain', onResDrain)
    }
    return false
  }

  /** The client's socket drained: hand the held credit back upstream. */
  resDrained (): void {
    const n = this.unconsumed
    if (n === 0) return
    this.unconsumed = 0
    this.deadline = Date.now() + this.target.idleTimeout
    if (this.stream !== null) this.stream.consume(n)
    else if (this.uwsgi !== null) this.uwsgi.resume()
  }

  end (): void {
    if (this.state === State.DONE) return
    const held = this.held
    if (held !== null) {
      this.held = null
      this.res.end(held)
    } else this.res.end()
    this.finish()
  }

  /** The upstream side failed: retry elsewhere when safe, else answer or cut the response. */
  upstreamError (err: FerryError): void {
    if (this.state === State.DONE) return
    const node = this.node
    const refused = err.code === 'FERRY_ERR_GOAWAY' || err.resetCode === ResetCode.REFUSED_STREAM
    if (node !== null) {
      node.outstanding--
      if (!refused) node.fail(Date.now(), err.code)
    }
    this.stream = null
    this.uwsgi = null
    this.node = null // outstanding already given back
    this.excluded = node
    const e = err.code.startsWith('FERRY_ERR_FRONT_')
      ? err
      : refused
        ? frontError('FERRY_ERR_FRONT_NO_HEALTHY_NODE', err.message, { cause: err })
        : err.code === 'FERRY_ERR_STREAM_RESET' || err.code === 'FERRY_ERR_SESSION_CLOSED'
          ? frontError('FERRY_ERR_FRONT_UPSTREAM_RESET', `${node?.name ?? ''}: ${err.message}`, { cause: err })
          : frontError('FERRY_ERR_FRONT_UPSTREAM_PROTOCOL', `${node?.name ?? ''}: ${err.message}`, { cause: err })
    if (this.state === State.SENT && this.host.retry && this.attempts < 2 && this.bodyBytes === 0 &&
      (refused || (this.head.bodyLength === 0 && IDEMPOTENT.has(this.head.method)))) {
      this.state = State.WAITING
      this.lastError = e
      this.dispatch()
      return
    }
    this.fail(e, node)
  }

  /** Past the deadline (checked by the Forwarder's sweep). */
  timeout (): void {
    if (this.state === State.DONE) return
    if (this.state === State.WAITING) {
      this.fail(frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', 'no node connected in time'))
      return
    }
    const node = this.node
    if (this.state === State.RESPONDING && this.unconsumed > 0) {
      // The node is waiting on us: the client has not taken what it was sent (nginx
      // send_timeout). Not the node's failure.
      this.#cancelUpstream(ResetCode.CANCEL)
      this.fail(frontError('FERRY_ERR_FRONT_CLIENT_TIMEOUT', `client took nothing for ${this.target.idleTimeout} ms`))
      return
    }
    const what = this.state === State.SENT ? `no response head within ${this.target.timeout} ms` : `idle for ${this.target.idleTimeout} ms`
    this.#cancelUpstream(ResetCode.TIMEOUT)
    // Only a node that never answered counts as failed (nginx: max_fails counts errors before
    // the response header); a response that went quiet midway is cut, the node stays in.
    if (node !== null && this.state === State.SENT) node.fail(Date.now(), 'timeout')
    this.fail(frontError('FERRY_ERR_FRONT_UPSTREAM_TIMEOUT', `${node?.name ?? ''}: ${what}`))
  }

  /** The client went away before the response ended: cancel upstream (RESET CANCEL). */
  clientClosed (): void {
    if (this.state === State.DONE) return
    this.#cancelUpstream(ResetCode.CANCEL)
    this.code = 'client closed'
    if (this.status === 0) this.status = 499
    this.finish()
  }

  #cancelUpstream (code: number): void {
    if (this.stream !== null) {
      this.stream.reset(code)
      this.stream = null
    }
    if (this.uwsgi !== null) {
      this.uwsgi.destroy()
      this.uwsgi = null
    }
  }

  /** Answer with an error (or cut a response already under way). */
  fail (err: FerryError, _node: UpstreamNode | null = null): void {
    if (this.state === State.DONE) return
    this.#cancelUpstream(ResetCode.CANCEL)
    this.code = err.code
    const res = this.res
    if (this.state !== State.RESPONDING && !res.headersSent) {
      this.status = err.statusCode
      const body = JSON.stringify({ statusCode: err.statusCode, code: err.code, message: err.message, requestId: this.head.requestId })
      const headers = ['content-type', 'application/json; charset=utf-8', 'x-request-id', this.head.requestId, 'content-length', String(Buffer.byteLength(body))]
      if (err.statusCode === 503) headers.push('retry-after', this.host.retryAfter)
      if (err.statusCode === 413 && this.bodyStarted) headers.push('connection', 'close')
      if (this.h2) (res as Http2ServerResponse).writeHead(err.statusCode, toObject(headers))
      else (res as ServerResponse).writeHead(err.statusCode, headers)
      res.end(body)
      if (this.bodyStarted && this.req.readableEnded === false) this.req.resume()
    } else {
      res.destroy()
    }
    this.finish(err)
  }

  finish (err?: FerryError): void {
    if (this.state === State.DONE) return
    this.state = State.DONE
    const node = this.node
    if (node !== null) {
      node.outstanding--
      if (err === undefined) node.ok()
    }
    this.host.untrack(this)
    if (this.host.accessLog || err !== undefined) {
      const line = {
        method: this.head.method,
        path: this.head.path,
        status: this.status,
        bytes: this.bytesOut,
        ms: Math.round((performance.now() - this.start) * 1000) / 1000,
        upstream: node?.name ?? null,
        code: this.code === '' ? undefined : this.code
      }
      if (err !== undefined) this.log.warn({ ...line, err: err.message }, 'upstream request failed')
      else this.log.info(line, 'request')
    }
  }
}

/** The request went through an Exchange (its access-log line is written there). */
export function isForwarded (req: ClientRequest): boolean {
  return (req as Tagged<ClientRequest>)[kExchange] !== undefined
}

function stripHopByHop (h: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < h.length; i += 2) if (!RESPONSE_HOP_BY_HOP.has(h[i]!)) out.push(h[i]!, h[i + 1]!)
  return out
}

function toObject (h: string[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {}
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i]!
    const prev = o[k]
    if (prev === undefined) o[k] = h[i + 1]!
    else if (Array.isArray(prev)) prev.push(h[i + 1]!)
    else o[k] = [prev, h[i + 1]!]
  }
  return o
}

// ── shared callbacks (no closure per request) ────────────────────────────────

function onStreamResponse (this: Stream, head: ResponseHead, endStream: boolean): void {
  (this.userData as Exchange).respond(head, endStream)
}

function onStreamData (this: Stream, chunk: Buffer): void {
  if ((this.userData as Exchange).body(chunk)) this.consume(chunk.length)
}

function onStreamEnd (this: Stream): void {
  (this.userData as Exchange).end()
}

function onStreamError (this: Stream, err: FerryError): void {
  const ex = this.userData as Exchange
  if (ex.stream === this) ex.upstreamError(err)
}

function onStreamDrain (this: Stream): void {
  const ex = this.userData as Exchange
  if (ex.stream === this) ex.req.resume()
}

function onReqData (this: Tagged<ClientRequest>, chunk: Buffer): void {
  this[kExchange]!.onBody(chunk)
}

function onReqEnd (this: Tagged<ClientRequest>): void {
  this[kExchange]!.onBodyEnd()
}

function onResDrain (this: Tagged<ClientResponse>): void {
  this[kExchange]!.resDrained()
}

function onResClose (this: Tagged<ClientResponse>): void {
  const ex = this[kExchange]!
  if (ex.state !== State.DONE) ex.clientClosed()
}
