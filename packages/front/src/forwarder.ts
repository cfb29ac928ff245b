/**
 * The forwarding core shared by the plugin and createFront: the pools, the route targets,
 * the set of requests in flight and one sweep timer that enforces every request's timeout
 * (one interval for all requests instead of a timer per request).
 */
import type { IncomingMessage } from 'node:http'
import { ResetCode, type ResponseHead, type Stream, WsClose } from '@ferry/protocol'
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { WebSocketServer } from 'ws'
import { DnsWatcher } from './dns.js'
import type { AccessLogger } from './access-log.js'
import { Exchange, type ExchangeHost, type Target, type Upgrade } from './exchange.js'
import { buildRequestHead, type HeadOptions } from './head.js'
import { checkUpstream, DEFAULTS, type FerryOptions, isDnsUpstream, type Normalized, normalizeOptions } from './options.js'
import { UpstreamPool } from './pool.js'
import { frontError } from './errors.js'
import { defaultUpstreamTls, type UpstreamTls, type UpstreamTlsOptions, upstreamTls } from './upstream-tls.js'
import { type BridgeHost, WsBridge } from './ws-bridge.js'
import { checkUpgrade, choiceFrom, forUpgrade, kUpgrade, type UpgradeChoice, upgradeChoice } from './ws-upgrade.js'

const SWEEP_MS = 50

export class Forwarder implements ExchangeHost, BridgeHost {
  readonly options: Normalized
  readonly pools = new Map<string, UpstreamPool>()
  readonly maxBody: number
  readonly retry: boolean
  readonly accessLog: boolean
  readonly retryAfter: string
  readonly uwsgiServerName: string
  readonly #head: HeadOptions
  /** Requests in flight: an intrusive list through the Exchanges (see track). */
  #first: Exchange | null = null
  #count = 0
  readonly #log: FastifyBaseLogger
  readonly #dns: DnsWatcher[] = []
  #sweep: NodeJS.Timeout | null = null
  #closed = false
  readonly wsMaxMessage: number
  readonly wsIdleTimeout: number
  /** Open WebSockets (few and long-lived: a Set is fine here). */
  readonly bridges = new Set<WsBridge>()
  #wss: WebSocketServer | null = null
  #wsSweep: NodeJS.Timeout | null = null

  constructor (input: FerryOptions, log: FastifyBaseLogger) {
    const o = this.options = normalizeOptions(input)
    this.#log = log
    this.maxBody = o.maxBody
    this.retry = o.retry
    this.accessLog = o.accessLog
    this.retryAfter = String(o.retryAfter)
    this.uwsgiServerName = o.serverName
    this.#head = { forwardedAllowIps: o.forwardedAllowIps, serverName: o.serverName }
    this.wsMaxMessage = o.wsMaxMessage
    this.wsIdleTimeout = o.wsIdleTimeout
    const plog = (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void => { log[level](obj, msg) }
    for (const [name, p] of Object.entries(o.pools)) {
      const fixed = p.upstreams.filter((u) => !isDnsUpstream(u))
      const pool = new UpstreamPool(name, fixed, { ...p, pingTimeout: Math.max(1000, p.connectTimeout), maxBackoff: DEFAULTS.maxBackoff, tls: o.upstreamTls }, plog)
      this.pools.set(name, pool)
      const names = p.upstreams.filter(isDnsUpstream)
      if (names.length > 0) this.#dns.push(new DnsWatcher(pool, fixed, names, { interval: o.dnsInterval, resolver: o.resolver }, plog))
    }
  }

  /** The target for a route or pool name. */
  target (pool: string, timeout = this.options.timeout, idleTimeout = this.options.idleTimeout): Target {
    return { pool: this.pools.get(pool)!, timeout, idleTimeout }
  }

  /** Forward one request (the route handler). */
  handle (request: FastifyRequest, reply: FastifyReply, target: Target): void {
    reply.hijack()
    const req = request.raw
    const head = buildRequestHead(req, request.method, request.url, request.id, this.#head)
    const upgrade = (req as { [kUpgrade]?: Upgrade })[kUpgrade]
    if (upgrade !== undefined) {
      const bad = checkUpgrade(req as IncomingMessage)
      if (bad !== null) {
        bad.answer(reply.raw as import('node:http').ServerResponse, request.id)
        return
      }
      forUpgrade(head)
    }
    new Exchange(this, req, reply.raw, head, target, request.log as unknown as AccessLogger, upgrade ?? null).run()
  }

  /** The node answered an upgrade with 101: complete the client's handshake and bridge the two. */
  upgraded (ex: Exchange, stream: Stream, head: ResponseHead): void {
    const up = ex.upgrade!
    const req = ex.req as IncomingMessage & { [upgradeChoice]?: UpgradeChoice }
    const bridge = new WsBridge(this, stream, up.socket, ex.head.requestId, ex.node?.name ?? '', ex.log)
    req[upgradeChoice] = choiceFrom(head, ex.log, ex.head.requestId)
    let attached = false
    this.#server().handleUpgrade(req, up.socket, up.head, (ws) => {
      attached = true
      bridge.attach(ws)
    })
    if (!attached) {
      // ws refused the handshake (it answered the client itself) or the client had gone.
      stream.reset(ResetCode.CANCEL, 'client handshake failed')
      return
    }
    this.bridges.add(bridge)
    if (this.wsIdleTimeout > 0 && this.#wsSweep === null) {
      this.#wsSweep = setInterval(() => this.#wsIdle(), Math.max(10, Math.min(1000, this.wsIdleTimeout / 4)))
      this.#wsSweep.unref()
    }
  }

  bridgeClosed (b: WsBridge): void {
    this.bridges.delete(b)
    if (this.bridges.size === 0 && this.#wsSweep !== null) {
      clearInterval(this.#wsSweep)
      this.#wsSweep = null
    }
  }

  #server (): WebSocketServer {
    if (this.#wss === null) {
      this.#wss = new WebSocketServer({
        noServer: true,
        clientTracking: false,
        perMessageDeflate: false,
        maxPayload: this.wsMaxMessage,
        // pings go to the node and its pong comes back: a pong proves the handler's thread lives
        autoPong: false,
        handleProtocols: (_protocols, req) => (req as { [upgradeChoice]?: UpgradeChoice })[upgradeChoice]?.protocol ?? false
      })
      this.#wss.on('headers', (headers: string[], req: IncomingMessage) => {
        const extra = (req as { [upgradeChoice]?: UpgradeChoice })[upgradeChoice]?.headers
        if (extra !== undefined) for (const line of extra) headers.push(line)
      })
    }
    return this.#wss
  }

  #wsIdle (): void {
    const limit = Date.now() - this.wsIdleTimeout
    for (const b of this.bridges) {
      if (b.lastActivity < limit) {
        this.#log.info({ reqId: b.requestId, upstream: b.upstream, ms: this.wsIdleTimeout }, 'websocket idle: closing')
        b.close(WsClose.GOING_AWAY, 'idle timeout')
      }
    }
  }

  /** Close every WebSocket with `code` (front shutdown: 1001 going away). */
  closeWebSockets (code: number = WsClose.GOING_AWAY, reason = 'server shutting down'): void {
    for (const b of [...this.bridges]) b.close(code, reason)
  }

  /**
   * Replace the node sets (SIGHUP reload): pools named in `upstreams` get exactly these nodes;
   * new nodes connect, removed ones drain.
   */
  reload (upstreams: Record<string, string[]>): void {
    // every list checked first: a bad one (FERRY_ERR_FRONT_CONFIG) changes nothing
    for (const list of Object.values(upstreams)) for (const u of list) checkUpstream(u)
    for (const [name, list] of Object.entries(upstreams)) {
      const pool = this.pools.get(name)
      if (pool === undefined) {
        this.#log.warn({ pool: name }, 'reload: pool not configured at start (restart to add pools)')
        continue
      }
      const fixed = list.filter((u) => !isDnsUpstream(u))
      const names = list.filter(isDnsUpstream)
      const i = this.#dns.findIndex((d) => d.pool === pool)
      if (i >= 0) {
        this.#dns[i]!.close()
        this.#dns.splice(i, 1)
      }
      if (names.length > 0) this.#dns.push(new DnsWatcher(pool, fixed, names, { interval: this.options.dnsInterval, resolver: this.options.resolver }, (l, o, m) => { this.#log[l](o, m) }))
      else pool.setNodes(fixed)
    }
  }

  /**
   * New TLS settings towards tls:// nodes (SIGHUP: rotated CA, client certificate or key):
   * every pool's new connections use them; open sessions go on as they are. Cached TLS
   * sessions of the old settings are not resumed (node.ts), so each node is verified against
   * the new CA on its next connection. No options: Node's root CAs, as at start. Throws
   * FERRY_ERR_FRONT_TLS_RELOAD (and changes nothing) when the files' contents are not usable.
   */
  reloadTls (o: UpstreamTlsOptions | undefined): UpstreamTls {
    let next: UpstreamTls
    try {
      next = upstreamTls(o) ?? defaultUpstreamTls()
    } catch (cause) {
      throw frontError('FERRY_ERR_FRONT_TLS_RELOAD', (cause as Error).message, { cause })
    }
    this.options.upstreamTls = next
    for (const p of this.pools.values()) p.options.tls = next
    return next
  }

  /**
   * A list linked through the Exchanges, not a Set: a Set that churns once per request
   * rehashes into new tables that V8 chains together, and a promoted dead table then keeps
   * later requests alive through every scavenge (see IntTable in @ferry/protocol).
   */
  track (ex: Exchange): void {
    if (ex.tracked) return
    ex.tracked = true
    ex.nextActive = this.#first
    if (this.#first !== null) this.#first.prevActive = ex
    this.#first = ex
    this.#count++
    if (this.#sweep === null && !this.#closed) {
      this.#sweep = setInterval(() => this.#check(), SWEEP_MS)
      this.#sweep.unref()
    }
  }

  untrack (ex: Exchange): void {
    if (!ex.tracked) return
    ex.tracked = false
    const prev = ex.prevActive
    const next = ex.nextActive
    if (prev !== null) prev.nextActive = next
    else this.#first = next
    if (next !== null) next.prevActive = prev
    ex.prevActive = null
    ex.nextActive = null
    this.#count--
  }

  get inFlight (): number {
    return this.#count
  }

  #check (): void {
    if (this.#count === 0) {
      if (this.#sweep !== null) clearInterval(this.#sweep)
      this.#sweep = null
      return
    }
    const now = Date.now()
    let ex = this.#first
    while (ex !== null) {
      const next = ex.nextActive // timeout() untracks ex
      if (ex.deadline !== 0 && now >= ex.deadline) ex.timeout()
      ex = next
    }
  }

  close (): void {
    this.closeWebSockets()
    if (this.#wsSweep !== null) clearInterval(this.#wsSweep)
    this.#wsSweep = null
    this.#closed = true
    if (this.#sweep !== null) clearInterval(this.#sweep)
    this.#sweep = null
    for (const d of this.#dns) d.close()
    for (const p of this.pools.values()) p.close()
  }
}
