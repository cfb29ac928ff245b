/**
 * One upstream node: its address, codec, connections and health.
 *
 * Native nodes keep `sessions` persistent multiplexed connections (default 2), reconnect
 * with exponential backoff when one closes, and open a fresh connection when the node sends
 * GOAWAY (the old one drains). uwsgi nodes have no persistent connection: one socket per
 * request, as uwsgi is.
 *
 * Health, in nginx's words: `max_fails` failures (connect errors, resets, timeouts) within
 * `fail_timeout` eject the node for `fail_timeout`; an active check (PING on native
 * sessions, a connect probe on uwsgi nodes) every `healthInterval` destroys connections that
 * stopped answering. A native node that reconnects (HELLO answered) is re-admitted at once.
 */
import type { Socket } from 'node:net'
import {
  type Address, type Codec, type FerryError, firstStreamIdError, formatAddress, formatNodeAddress, type NodeAddress, parseAddress, ResetCode, Session
} from '@ferry/protocol'
import type { Pickable } from './balancer.js'
import { frontError } from './errors.js'
import { closedAfterHandshake, connectError, connectSocket, type Handshake, type UpstreamTls, watchHandshake } from './upstream-tls.js'

export interface NodeOptions {
  /** Persistent connections per native node. */
  sessions: number
  /** Use the thread endpoints the node's HELLO announces (ferry app --direct). */
  direct: boolean
  connectTimeout: number
  maxFails: number
  failTimeout: number
  /** Token sent in HELLO (the app-server's --auth). */
  auth: string | undefined
  /** Longest wait between reconnect attempts, ms. */
  maxBackoff: number
  pingTimeout: number
  /** Secure context and name check for tls:// nodes (null when the pool has none). */
  tls: UpstreamTls | null
}

/** What a node tells its pool. */
export interface NodeEvents {
  /** The node can take requests now (a session became ready, or an ejection ended). */
  nodeUp (node: UpstreamNode): void
  /** A connect attempt failed (the pool fails requests waiting only for this node). */
  connectFailed (node: UpstreamNode, err: FerryError): void
  log (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void
}

const MIN_BACKOFF = 50

/**
 * FERRY_FIRST_STREAM_ID: where the front's connections to nodes start their stream ids (odd;
 * default 1). Ids are never reused, so a connection carries 2^30 requests (a day at 12k req/s)
 * and then refuses new ones; the front then drops it, holds the requests that find the node
 * without a connection and opens a new one. Starting near the end shows that happen without
 * waiting a day for it (a diagnostic; test/front/stream-ids.test.ts uses it).
 */
const FIRST_STREAM_ID = firstStreamId(process.env.FERRY_FIRST_STREAM_ID)

function firstStreamId (v: string | undefined): number {
  if (v === undefined || v === '') return 1
  const bad = firstStreamIdError(Number(v))
  if (bad !== null) throw new Error(`FERRY_FIRST_STREAM_ID=${v}: ${bad}`)
  return Number(v)
}

/** Most thread endpoints taken from one node's HELLO (the rest are ignored, with a warning). */
const MAX_ENDPOINTS = 64
/**
 * A thread endpoint unreachable this long is logged: a thread being replaced or reloaded is
 * unreachable for the time a thread takes to start (≈ 0.1–0.5 s), which is not worth a line.
 */
const ENDPOINT_WARN_AFTER = 2000

/**
 * One of the node's --direct threads (announced in its HELLO): one session to it, kept open
 * (reconnected with backoff) while the node names it.
 */
interface DirectLink {
  name: string
  address: Address
  session: Session | null
  connecting: boolean
  backoff: number
  timer: NodeJS.Timeout | null
  /** The node no longer names it (or the node was removed). */
  dropped: boolean
  /** Its last connect failed and that was logged (one line until it connects again). */
  warned: boolean
  /** When its connects started failing (0: the last one succeeded). */
  failingSince: number
}

export class UpstreamNode implements Pickable {
  readonly name: string
  readonly codec: Codec
  readonly address: Address
  outstanding = 0
  served = 0
  /** Failures counted in the current fail_timeout window. */
  fails = 0
  /** Ejected until this time (ms, Date.now clock); 0 = not ejected. */
  ejectedUntil = 0
  /** The node was removed from the set (reload, DNS): it takes no new requests. */
  removed = false
  /** Last connect attempt failed and none is under way. */
  down = false
  /** Ready sessions that are not going away, in the order they became ready. */
  readonly sessions: Session[] = []
  /**
   * Ready sessions to the node's --direct threads (the endpoints its HELLO announced): requests
   * go there while any is ready — straight to the thread that runs them — else to `sessions`.
   */
  readonly directSessions: Session[] = []
  readonly #links = new Map<string, DirectLink>()
  /** Every live session including draining ones (closed on removal). */
  readonly #all = new Set<Session>()
  #connecting = 0
  #failWindowStart = 0
  #backoff = MIN_BACKOFF
  #reconnectTimer: NodeJS.Timeout | null = null
  #options: NodeOptions
  #events: NodeEvents
  /** Another node in the pool can take over when this one is ejected. */
  soleNode = false
  /**
   * tls:// node: the last TLS session, resumed by the next connection — only while the
   * settings it was made with are in force (a reload replaces `options.tls`: a session from
   * the old ones is never offered, so the node is verified against the new CA).
   */
  #tlsSession: Buffer | undefined
  #tlsSessionFrom: UpstreamTls | null = null
  /** tls:// node: the last TLS failure logged (one line per new reason, not per retry). */
  #tlsLogged: string | null = null

  constructor (address: NodeAddress, options: NodeOptions, events: NodeEvents) {
    this.name = formatNodeAddress(address)
    this.codec = address.codec
    this.address = address.address
    this.#options = options
    this.#events = events
  }

  get tls (): boolean { return this.address.kind === 'tcp' && this.address.tls === true }

  /**
   * A connection to the node (a TLS one for tls://, resuming the last session) and, for
   * tls://, how far its handshake got (null for plain sockets).
   */
  openSocket (address: Address = this.address): { socket: Socket, handshake: Handshake | null } {
    const tls = this.#options.tls
    const own = address === this.address
    const socket = connectSocket(address, tls, own && this.#tlsSessionFrom === tls ? this.#tlsSession : undefined)
    if (!this.tls) return { socket, handshake: null }
    if (!own) return { socket, handshake: watchHandshake(socket) }
    socket.on('session', (session: Buffer) => {
      this.#tlsSession = session
      this.#tlsSessionFrom = tls
    })
    return { socket, handshake: watchHandshake(socket) }
  }

  /** Log a TLS failure once per new reason (reconnects retry every few seconds). */
  tlsFailed (err: FerryError): void {
    if (err.code !== 'FERRY_ERR_FRONT_UPSTREAM_TLS') return
    this.#tlsSession = undefined
    if (this.#tlsLogged === err.message) return
    this.#tlsLogged = err.message
    this.#events.log('warn', { node: this.name, code: err.code, err: err.message }, 'upstream TLS failed: node not used')
  }

  usable (now: number): boolean {
    if (this.removed) return false
    if (this.ejectedUntil !== 0) {
      if (now < this.ejectedUntil && !this.soleNode) return false
      if (now >= this.ejectedUntil) this.#readmit()
    }
    return this.codec === 'uwsgi' || this.sessions.length > 0 || this.directSessions.length > 0
  }

  /** Not usable now, but a connect is under way (requests may wait for it). */
  get pending (): boolean {
    return !this.removed && this.codec === 'native' && this.sessions.length === 0 && this.#connecting > 0
  }

  get connecting (): number { return this.#connecting }

  /** The ready session with the fewest open streams (native nodes), a --direct thread's first. */
  session (): Session | null {
    const s = this.directSessions.length > 0 ? this.directSessions : this.sessions
    if (s.length === 0) return null
    let best = s[0]!
    for (let i = 1; i < s.length; i++) if (s[i]!.openStreams < best.openStreams) best = s[i]!
    return best
  }

  /**
   * A connection of this node ran out of stream ids (the exchange that found it so drops it
   * with forget()): worth a line, as it happens about once a day per busy connection and the
   * requests of the moment wait for the new connection.
   */
  idsExhausted (session: Session): void {
    this.#events.log('info', { node: this.name, openStreams: session.openStreams }, 'upstream connection ran out of stream ids; a new one replaces it')
  }

  /** Open connections up to the configured count (native nodes). */
  start (): void {
    if (this.codec !== 'native') return
    this.#fill()
  }

  /** Connect now, skipping the backoff wait (a request is waiting for this node). */
  connectNow (): void {
    if (this.codec !== 'native' || this.removed || this.#connecting > 0) return
    if (this.#reconnectTimer !== null) {
      clearTimeout(this.#reconnectTimer)
      this.#reconnectTimer = null
    }
    this.#fill()
  }

  /** Count a passive failure (connect error, reset, timeout): nginx max_fails/fail_timeout. */
  fail (now: number, why: string): void {
    if (now - this.#failWindowStart > this.#options.failTimeout) {
      this.#failWindowStart = now
      this.fails = 0
    }
    this.fails++
    if (this.fails >= this.#options.maxFails && this.ejectedUntil === 0) {
      this.ejectedUntil = now + this.#options.failTimeout
      this.#events.log('warn', { node: this.name, fails: this.fails, why }, 'upstream node ejected')
    }
  }

  /** A request succeeded: the failure window starts over. */
  ok (): void {
    if (this.fails !== 0) this.fails = 0
    this.#tlsLogged = null
  }

  #readmit (): void {
    this.ejectedUntil = 0
    this.fails = 0
    this.#events.log('info', { node: this.name }, 'upstream node re-admitted')
    this.#events.nodeUp(this)
  }

  /**
   * Active health check: PING every ready session that has been silent since the last check
   * (one that read frames from the node since then has shown its event loop lives); a session
   * that does not answer is destroyed.
   */
  check (): void {
    if (this.removed) return
    if (this.codec === 'uwsgi') {
      this.#probeUwsgi()
      return
    }
    for (const s of this.sessions) {
      s.pingIfQuiet()?.catch((err: FerryError) => {
        this.#events.log('warn', { node: this.name, code: err.code }, 'upstream health check failed')
        this.fail(Date.now(), 'ping timeout')
        s.destroy(err)
      })
    }
    // a silent thread is closed (and reconnected); the node itself answered on its own address
    for (const s of this.directSessions) {
      s.pingIfQuiet()?.catch((err: FerryError) => {
        this.#events.log('warn', { node: this.name, code: err.code }, 'health check of a --direct thread failed: its connection is closed')
        s.destroy(err)
      })
    }
  }

  /**
   * uwsgi has no ping: a connection the node accepts is "up". Over TLS the handshake is not
   * enough — a node that refuses this front's client certificate closes the connection right
   * after it (TLS 1.3: after our side has finished), so the probe waits as long again as the
   * handshake took (50 ms at least, --connect-timeout at most) for that close before it
   * counts the node up.
   */
  #probeUwsgi (): void {
    const { socket, handshake } = this.openSocket()
    const started = Date.now()
    let settled = false
    const up = (): void => {
      if (settled) return
      settled = true
      socket.destroy()
      this.#tlsLogged = null
      if (this.down) {
        this.down = false
        if (this.ejectedUntil !== 0) this.#readmit()
      }
    }
    const down = (e: FerryError): void => {
      if (settled) return
      settled = true
      socket.destroy()
      this.down = true
      this.tlsFailed(e)
      this.fail(Date.now(), `health check: ${e.message}`)
    }
    socket.setTimeout(this.#options.connectTimeout)
    if (handshake === null) {
      socket.once('connect', up)
    } else {
      socket.once('secureConnect', () => {
        const timer = setTimeout(up, Math.min(this.#options.connectTimeout, Math.max(50, 2 * (Date.now() - started))))
        socket.once('close', () => {
          clearTimeout(timer)
          down(closedAfterHandshake(this.name))
        })
      })
    }
    socket.once('timeout', () => socket.destroy(new Error('connect timeout')))
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const e = connectError(this.name, err, this.tls, handshake)
      // a reset right after the handshake is the same refusal as a close
      down(handshake?.secure === true && e.code !== 'FERRY_ERR_FRONT_UPSTREAM_TLS' ? closedAfterHandshake(this.name) : e)
    })
  }

  /** Stop sending new requests; close connections once their streams finish. */
  drain (): void {
    this.removed = true
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = null
    for (const link of this.#links.values()) this.#dropLink(link)
    for (const s of this.#all) s.goaway(ResetCode.NO_ERROR, 'node removed')
    this.sessions.length = 0
    this.directSessions.length = 0
  }

  /** Close everything now. */
  destroy (): void {
    this.removed = true
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = null
    for (const link of this.#links.values()) this.#dropLink(link)
    for (const s of this.#all) s.destroy()
    this.sessions.length = 0
    this.directSessions.length = 0
  }

  #fill (): void {
    while (!this.removed && this.sessions.length + this.#connecting < this.#options.sessions) this.#connect()
  }

  #scheduleReconnect (): void {
    if (this.removed || this.#reconnectTimer !== null || this.#connecting > 0) return
    if (this.sessions.length >= this.#options.sessions) return
    const delay = this.#backoff
    this.#backoff = Math.min(this.#backoff * 2, this.#options.maxBackoff)
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null
      this.#fill()
    }, delay)
    this.#reconnectTimer.unref()
  }

  /**
   * A session to `address` (the node's own, or one of its thread endpoints). `settle` is
   * called once: with null when HELLO was answered, or with why it failed before that.
   */
  #open (address: Address, name: string, settle: (err: FerryError | null) => void): Session {
    const { socket, handshake } = this.openSocket(address)
    socket.setNoDelay?.(true)
    const session = new Session(socket, {
      role: 'client',
      auth: this.#options.auth,
      agent: 'ferry-front/0.1.0',
      helloTimeout: this.#options.connectTimeout,
      pingTimeout: this.#options.pingTimeout,
      firstStreamId: FIRST_STREAM_ID
    })
    this.#all.add(session)
    let settled = false
    const timer = setTimeout(() => {
      session.destroy(frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', `${name}: connect timeout ${this.#options.connectTimeout} ms`))
    }, this.#options.connectTimeout)
    timer.unref()
    let lastError: FerryError | null = null
    session.on('error', (err: FerryError) => { lastError = err })
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (!settled) lastError = connectError(name, err, this.tls, handshake)
    })
    session.once('ready', () => {
      settled = true
      clearTimeout(timer)
      settle(null)
    })
    session.once('close', () => {
      this.#all.delete(session)
      if (settled) return
      settled = true
      clearTimeout(timer)
      settle(lastError ?? (handshake?.secure === true
        ? closedAfterHandshake(name)
        : frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', `${name}: closed before HELLO`)))
    })
    return session
  }

  #connect (): void {
    this.#connecting++
    const session = this.#open(this.address, this.name, (err) => {
      this.#connecting--
      if (err !== null) {
        this.down = true
        this.tlsFailed(err)
        this.fail(Date.now(), err.message)
        this.#events.connectFailed(this, err)
        return
      }
      if (this.removed || session.goingAway) {
        session.goaway()
        return
      }
      this.sessions.push(session)
      this.#backoff = MIN_BACKOFF
      this.#tlsLogged = null
      const wasDown = this.down
      this.down = false
      if (this.ejectedUntil !== 0) this.#readmit()
      else if (this.sessions.length === 1) this.#events.nodeUp(this)
      if (wasDown) this.#events.log('info', { node: this.name }, 'upstream node reconnected')
      if (this.#options.direct) this.#adopt(session.peerEndpoints)
    })
    session.on('goaway', () => {
      this.#remove(session)
      // The node drains this connection; keep the configured count with a fresh one.
      if (!this.removed) this.#scheduleReconnect()
    })
    session.once('close', () => {
      this.#remove(session)
      this.#scheduleReconnect()
    })
  }

  // ── --direct threads ───────────────────────────────────────────────────────

  /**
   * The thread endpoints a HELLO of the node announced: new ones are connected, ones it no
   * longer names are drained. A tcp endpoint is dialled at the host this node was reached at
   * (its own host part may be a wildcard or a private name), with this node's tls:// setting.
   */
  #adopt (endpoints: readonly string[]): void {
    if (this.removed) return
    if (endpoints.length > MAX_ENDPOINTS) {
      this.#events.log('warn', { node: this.name, endpoints: endpoints.length }, `the node announced more than ${MAX_ENDPOINTS} thread endpoints; using the first ${MAX_ENDPOINTS}`)
    }
    const want = new Map<string, Address>()
    for (const e of endpoints.slice(0, MAX_ENDPOINTS)) {
      const a = this.#endpointAddress(e)
      if (a !== null) want.set(formatAddress(a), a)
    }
    for (const [key, link] of this.#links) {
      if (want.has(key)) continue
      this.#dropLink(link)
      this.#links.delete(key)
    }
    for (const [key, address] of want) {
      if (this.#links.has(key)) continue
      const link: DirectLink = { name: key, address, session: null, connecting: false, backoff: MIN_BACKOFF, timer: null, dropped: false, warned: false, failingSince: 0 }
      this.#links.set(key, link)
      this.#dial(link)
    }
  }

  #endpointAddress (text: string): Address | null {
    let a: Address
    try {
      a = parseAddress(text)
    } catch (err) {
      this.#events.log('warn', { node: this.name, endpoint: text, err: (err as Error).message }, 'the node announced a thread endpoint that is not an address: ignored')
      return null
    }
    const own = this.address
    if (a.kind === 'unix') return own.kind === 'unix' ? a : null
    if (own.kind !== 'tcp') return null
    return own.tls === true ? { kind: 'tcp', host: own.host, port: a.port, tls: true } : { kind: 'tcp', host: own.host, port: a.port }
  }

  #dial (link: DirectLink): void {
    link.connecting = true
    const session = this.#open(link.address, `${this.name} (thread ${link.name})`, (err) => {
      link.connecting = false
      if (err !== null) {
        // the node still serves on its own address: a thread endpoint this front cannot reach
        // (another host's unix path, a firewalled port) only costs the direct path
        const now = Date.now()
        if (link.failingSince === 0) link.failingSince = now
        if (!link.warned && !link.dropped && now - link.failingSince >= ENDPOINT_WARN_AFTER) {
          link.warned = true
          this.#events.log('warn', { node: this.name, endpoint: link.name, code: err.code, err: err.message }, 'cannot reach a --direct thread of the node: its requests go through the node\'s own address until it answers')
        }
        return
      }
      if (link.dropped || this.removed || session.goingAway) {
        session.goaway()
        return
      }
      link.session = session
      link.backoff = MIN_BACKOFF
      link.failingSince = 0
      if (link.warned) {
        link.warned = false
        this.#events.log('info', { node: this.name, endpoint: link.name }, '--direct thread reachable again')
      }
      this.directSessions.push(session)
      if (this.directSessions.length === 1 && this.sessions.length === 0) this.#events.nodeUp(this)
    })
    const gone = (): void => {
      this.#removeDirect(session)
      if (link.session === session) link.session = null
      this.#relink(link)
    }
    session.on('goaway', gone)
    session.once('close', gone)
  }

  /** Reconnect a thread endpoint after its backoff (a replaced or reloaded thread listens there again). */
  #relink (link: DirectLink): void {
    if (link.dropped || this.removed || link.timer !== null || link.connecting || link.session !== null) return
    const delay = link.backoff
    link.backoff = Math.min(link.backoff * 2, this.#options.maxBackoff)
    link.timer = setTimeout(() => {
      link.timer = null
      if (!link.dropped && !this.removed) this.#dial(link)
    }, delay)
    link.timer.unref()
  }

  #dropLink (link: DirectLink): void {
    link.dropped = true
    if (link.timer !== null) clearTimeout(link.timer)
    link.timer = null
    const s = link.session
    link.session = null
    if (s !== null) {
      this.#removeDirect(s)
      s.goaway(ResetCode.NO_ERROR, 'endpoint removed')
    }
  }

  #removeDirect (session: Session): void {
    const i = this.directSessions.indexOf(session)
    if (i >= 0) this.directSessions.splice(i, 1)
  }

  /** A session refused a new stream (going away, closed): take it out of the choice now. */
  forget (session: Session): void {
    this.#remove(session)
    this.#removeDirect(session)
  }

  #remove (session: Session): void {
    const i = this.sessions.indexOf(session)
    if (i >= 0) this.sessions.splice(i, 1)
  }
}
