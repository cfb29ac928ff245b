/**
 * One forwarded request: picks a node, opens a stream (native) or a connection (uwsgi),
 * streams the request body up and the response down with backpressure both ways, retries
 * once on another node when that is safe, and answers errors with a status and the request id.
 * This file keeps the state, the node choice, failures and timeouts; client-side.ts writes to
 * the client (and reads its request body), retry.ts decides whether a failed attempt goes to
 * another node, access-log.ts writes the line.
 *
 * Hot path notes: one Exchange object per request and no closures — the stream's callbacks
 * and the request/response listeners are shared functions that find their Exchange through
 * `stream.userData` or a symbol on the Node object.
 */
import type { Socket } from 'node:net'
import { type FerryError, type RequestHead, ResetCode, type ResponseHead, type Stream } from '@ferry/protocol'
import { type AccessLogger, logExchange } from './access-log.js'
import { type ClientResponse, endResponse, kExchange, readRequestBody, type Tagged, writeBody, writeError, writeResponseHead } from './client-side.js'
import { frontError } from './errors.js'
import type { ClientRequest } from './head.js'
import type { UpstreamNode } from './node.js'
import type { UpstreamPool, Waiter } from './pool.js'
import { attemptError, isRefused, mayRetry } from './retry.js'
import { UwsgiCall } from './uwsgi-call.js'

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
  /** The current attempt went to one of the node's --direct threads (see upstreamError). */
  viaDirect = false
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
        this.viaDirect = false
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
          if (session.streamIdsLeft === 0) node.idsExhausted(session)
          node.forget(session)
        }
        continue
      }
      this.#bind(node)
      this.viaDirect = node.directSessions.length > 0 && node.directSessions.includes(session)
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
      readRequestBody(this)
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
    writeResponseHead(this, head)
    if (endStream) {
      this.res.end()
      this.finish()
    }
  }

  end (): void {
    if (this.state === State.DONE) return
    endResponse(this)
    this.finish()
  }

  /** The upstream side failed: retry elsewhere when safe, else answer or cut the response. */
  upstreamError (err: FerryError): void {
    if (this.state === State.DONE) return
    const node = this.node
    const refused = isRefused(err)
    // A --direct thread that died or was replaced as stuck is one thread of the node, not the
    // node: it is not counted as the node's failure, and a retry may go to the node's other
    // threads or its own address (the node's main thread replaces the thread meanwhile).
    const thread = this.viaDirect
    if (node !== null) {
      node.outstanding--
      if (!refused && !thread) node.fail(Date.now(), err.code)
    }
    this.stream = null
    this.uwsgi = null
    this.node = null // outstanding already given back
    this.excluded = thread ? null : node
    const e = attemptError(err, node, refused)
    if (this.state === State.SENT && mayRetry(this, refused)) {
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
    if (this.state !== State.RESPONDING && !this.res.headersSent) {
      this.status = err.statusCode
      writeError(this, err)
    } else {
      this.res.destroy()
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
    if (this.host.accessLog || err !== undefined) logExchange(this, node, err)
  }
}

// ── shared callbacks (no closure per request) ────────────────────────────────

function onStreamResponse (this: Stream, head: ResponseHead, endStream: boolean): void {
  (this.userData as Exchange).respond(head, endStream)
}

function onStreamData (this: Stream, chunk: Buffer): void {
  if (writeBody(this.userData as Exchange, chunk)) this.consume(chunk.length)
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

function onResClose (this: Tagged<ClientResponse>): void {
  const ex = this[kExchange]!
  if (ex.state !== State.DONE) ex.clientClosed()
}
