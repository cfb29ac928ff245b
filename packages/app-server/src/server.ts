/**
 * The app-server process: listeners (native + uwsgi on each), the current pool, and the
 * lifecycle — graceful shutdown (GOAWAY, stop accepting, drain, exit) and reload (a fresh
 * pool takes new requests at once while the old one drains).
 */
import type { Socket } from 'node:net'
import { TLSSocket } from 'node:tls'
import { availableParallelism } from 'node:os'
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { DEFAULT_WS_MAX_MESSAGE, type FerryError, formatAddress, parseAddress, type Session, WsClose } from '@ferry/protocol'
import type { Logger } from 'pino'
import { DEFAULT_LOG_STACK_INTERVAL } from './error-log.js'
import { appError } from './errors.js'
import { DirectThreads } from './direct.js'
import { type BoundListener, closeListener, type ConnectionKind, listen } from './listener.js'
import { Metrics } from './metrics.js'
import { type ConnectionHost, serveNative } from './native.js'
import { CgiRunner } from './cgi.js'
import { validateMiddleware } from './middleware.js'
import { type MiddlewareSpec, type Mount, type MountOptions, newMount, Router } from './mounts.js'
import { Pool, type PoolOptions, type PoolSettings } from './pool.js'
import { startStats, type StatsServer } from './stats.js'
import { type ListenerTls, loadListenerTls, reloadListenerTls, type TlsFiles, type TlsRefusal } from './tls.js'
import { serveUwsgi } from './uwsgi-conn.js'

export interface AppServerOptions extends PoolSettings, TlsFiles {
  /** Path (or file: URL) of the handler module: the same as a mount at '/'; null with mounts only. */
  handler: string | null
  /** Applications by URL prefix (fetch handlers and CGI folders); see mounts.ts. */
  mounts: MountOptions[]
  /** Middleware for every fetch mount, outermost first. */
  middleware: MiddlewareSpec[]
  listen: string[]
  /** e.g. 0o660; null leaves the umask's mode. */
  socketMode: number | null
  gracefulTimeout: number
  stats: string | null
  /**
   * Shared secret for the native HELLO's HMAC challenge-response (protocol.md §6.1); a front
   * without it gets FERRY_ERR_AUTH. null = no authentication (warned about on non-loopback tcp).
   */
  auth: string | null
  /**
   * Client addresses allowed to speak uwsgi over tcp (uwsgi has no authentication): IPs, or
   * '*' for any. Unix sockets are always allowed (their file mode guards them). Default
   * loopback only, as gunicorn's forwarded_allow_ips.
   */
  uwsgiAllow: string[]
  /** Most open WebSockets on this node; upgrades past it get 503 (FERRY_ERR_APP_WS_LIMIT). */
  maxWebSockets: number
  /**
   * Threads that each serve native connections on addresses of their own, announced to fronts
   * in HELLO, with the handlers inline (direct.ts); 0 = none. The pool still serves whatever
   * comes to the node's own addresses (uwsgi, fronts that do not use the endpoints).
   */
  direct: number
  // TlsFiles: tlsCert / tlsKey (PEM files, required by tls:// listeners) and tlsClientCa
  // (clients must present a certificate it signed; a connection without one is refused).
}

export const DEFAULT_OPTIONS: Omit<AppServerOptions, 'handler'> = {
  mounts: [],
  middleware: [],
  listen: ['tcp://127.0.0.1:8001'],
  socketMode: null,
  threadsMin: availableParallelism(),
  threadsMax: availableParallelism(),
  concurrency: 64,
  maxQueue: 1024,
  timeout: 30000,
  maxRequests: 0,
  maxRequestsJitter: 0,
  maxUncaught: 10000,
  maxMemory: 0,
  gracefulTimeout: 30000,
  idleTimeout: 10000,
  stats: null,
  logLevel: 'info',
  logStackInterval: DEFAULT_LOG_STACK_INTERVAL,
  auth: null,
  tlsCert: null,
  tlsKey: null,
  tlsClientCa: null,
  uwsgiAllow: ['127.0.0.1', '::1', '::ffff:127.0.0.1'],
  wsMaxMessage: DEFAULT_WS_MAX_MESSAGE,
  maxWebSockets: 10000,
  direct: 0
}

/** After the grace period, how long WebSockets closed with 1001 get for their close handshake, ms. */
const WS_CLOSE_GRACE = 2000

/** True when every pool drained within `ms`. */
async function drainWithin (pools: { drain (): Promise<void> }[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const drained = await Promise.race([
    Promise.all(pools.map((p) => p.drain())).then(() => true),
    new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  ])
  clearTimeout(timer)
  return drained
}

/** Default number of CGI programs one mount runs at once. */
export const CGI_CONCURRENCY = 16

function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

function handlerUrl (handler: string, generation: number): string {
  const base = handler.startsWith('file:') ? handler : pathToFileURL(resolvePath(handler)).href
  return generation === 0 ? base : `${base}?ferry-reload=${generation}`
}

export class AppServer implements ConnectionHost {
  readonly options: AppServerOptions
  readonly log: Logger
  readonly metrics = new Metrics()
  readonly router: Router
  listeners: BoundListener[] = []
  stats: StatsServer | null = null
  /** --direct's threads (null without). */
  direct: DirectThreads | null = null
  readonly sessions = new Set<Session>()
  readonly uwsgiSockets = new Set<Socket>()
  get auth (): string | null { return this.options.auth }
  get maxWebSockets (): number { return this.options.maxWebSockets }
  /** WebSockets open or being set up on this node (native.ts counts them). */
  webSockets = 0
  #generation = 0
  #draining = new Set<Pool>()
  #closing = false
  #reloading: Promise<void> | null = null
  /** The certificates tls:// listeners hand to new connections (null: no tls:// listener). */
  #tls: ListenerTls | null = null

  #root: Logger

  /** `log` is the process's root logger; components log through children of it. */
  private constructor (options: AppServerOptions, log: Logger) {
    this.options = options
    this.#root = log
    this.log = log.child({ component: 'app' })
    const list = [...options.mounts]
    if (options.handler !== null) list.push({ prefix: '', handler: options.handler, cgi: null })
    if (list.length === 0) throw appError('FERRY_ERR_APP_OPTIONS', 'no handler and no mounts')
    if (options.middleware.length > 0 && list.every((m) => m.cgi !== null)) {
      throw appError('FERRY_ERR_APP_OPTIONS', '--middleware needs a fetch mount: CGI mounts take no middleware')
    }
    for (const spec of options.middleware) validateMiddleware(spec)
    for (const m of list) for (const spec of m.middleware ?? []) validateMiddleware(spec)
    const seen = new Set<string>()
    for (const m of list) {
      if (seen.has(m.prefix)) throw appError('FERRY_ERR_APP_OPTIONS', `two mounts at ${m.prefix === '' ? '/' : m.prefix}`)
      seen.add(m.prefix)
    }
    const mounts: Mount[] = []
    try {
      // CGI folders are checked first: a missing one fails before any thread starts
      for (const m of list) if (m.cgi !== null) mounts.push(newMount(m, this.#newCgi(m)))
      for (const m of list) if (m.cgi === null) mounts.push(newMount(m, this.#newPool(m)))
    } catch (err) {
      for (const m of mounts) if (m.dispatcher instanceof Pool) m.dispatcher.destroy()
      throw err
    }
    this.router = new Router(mounts)
  }

  get mounts (): Mount[] { return this.router.mounts }

  route (path: string): Mount | null {
    return this.router.route(path)
  }

  #pools (): Pool[] {
    const out: Pool[] = []
    for (const m of this.router.mounts) if (m.dispatcher instanceof Pool) out.push(m.dispatcher)
    return out
  }

  #cgis (): CgiRunner[] {
    const out: CgiRunner[] = []
    for (const m of this.router.mounts) if (m.dispatcher instanceof CgiRunner) out.push(m.dispatcher)
    return out
  }

  /** Load the handler into the pool, then listen. Rejects (and cleans up) on any failure. */
  static async start (options: AppServerOptions, log: Logger): Promise<AppServer> {
    const addresses = options.listen.map((a) => parseAddress(a))
    const tls = loadListenerTls(options, addresses)
    const statsAddress = options.stats === null ? null : parseAddress(options.stats)
    if (statsAddress?.kind === 'tcp' && statsAddress.tls === true) throw appError('FERRY_ERR_APP_OPTIONS', '--stats serves plain HTTP: tls:// is for --listen (keep --stats on loopback or a private address)')
    const server = new AppServer(options, log)
    server.#tls = tls
    try {
      await Promise.all(server.#pools().map((p) => p.ready()))
      if (options.direct > 0) {
        server.direct = new DirectThreads(options, addresses, log.child({ component: 'direct' }))
        await server.direct.start()
      }
      const tlsLog = log.child({ component: 'tls' })
      for (const [i, a] of addresses.entries()) {
        server.listeners.push(await listen(a, {
          socketMode: options.socketMode,
          tls,
          onConnection: (socket, first, kind) => server.#onConnection(socket, first, kind, i),
          onRefused: (r: TlsRefusal) => tlsLog.warn({ code: 'FERRY_ERR_APP_TLS_HANDSHAKE', reason: r.reason, remoteAddress: r.remoteAddress, address: r.listener, err: r.message }, 'TLS connection refused')
        }))
      }
      if (statsAddress !== null) server.stats = await startStats(statsAddress, server)
      for (const a of addresses) {
        if (a.kind !== 'tcp' || isLoopback(a.host) || options.auth !== null) continue
        if (a.tls !== true) {
          log.warn({ code: 'FERRY_ERR_APP_UNAUTHENTICATED', address: formatAddress(a) },
            'listening on a non-loopback tcp address without --auth: any peer that reaches it can send requests; set a shared secret (FERRY_APP_AUTH) on this node and its fronts, or listen on tls:// with --tls-client-ca')
        } else if (options.tlsClientCa === null) {
          log.warn({ code: 'FERRY_ERR_APP_UNAUTHENTICATED', address: formatAddress(a) },
            'listening on a non-loopback tls:// address without --tls-client-ca or --auth: the link is encrypted, but any peer that reaches it can send requests; require client certificates (--tls-client-ca) or a shared secret (FERRY_APP_AUTH)')
        }
      }
    } catch (err) {
      await server.close()
      throw err
    }
    return server
  }

  get addresses (): string[] { return this.listeners.map((l) => l.text) }
  get draining (): number { return this.#draining.size }

  #newPool (m: MountOptions): Pool {
    const o = this.options
    const threadsMax = m.threadsMax ?? o.threadsMax
    const bindings = o.mounts.length === 0 ? { generation: this.#generation } : { mount: m.prefix === '' ? '/' : m.prefix, generation: this.#generation }
    const opts: PoolOptions = {
      handlerUrl: handlerUrl(m.handler!, this.#generation),
      prefix: m.prefix,
      middleware: [...o.middleware, ...(m.middleware ?? [])],
      generation: this.#generation,
      threadsMin: threadsMax === 0 ? 0 : (m.threadsMin ?? Math.min(o.threadsMin, threadsMax)),
      threadsMax,
      concurrency: m.concurrency ?? o.concurrency,
      maxQueue: m.maxQueue ?? o.maxQueue,
      timeout: m.timeout ?? o.timeout,
      maxRequests: m.maxRequests ?? o.maxRequests,
      maxRequestsJitter: m.maxRequestsJitter ?? o.maxRequestsJitter,
      maxUncaught: m.maxUncaught ?? o.maxUncaught,
      maxMemory: m.maxMemory ?? o.maxMemory,
      idleTimeout: o.idleTimeout,
      logLevel: o.logLevel,
      logStackInterval: o.logStackInterval,
      wsMaxMessage: o.wsMaxMessage,
      log: this.#root.child({ component: 'pool', ...bindings }),
      inlineLog: this.#root.child({ component: 'inline', ...bindings })
    }
    return new Pool(opts)
  }

  #newCgi (m: MountOptions): CgiRunner {
    const o = this.options
    return new CgiRunner({
      root: m.cgi!,
      prefix: m.prefix,
      timeout: m.timeout ?? o.timeout,
      concurrency: m.concurrency ?? CGI_CONCURRENCY,
      maxQueue: m.maxQueue ?? o.maxQueue,
      log: this.#root.child({ component: 'cgi', mount: m.prefix === '' ? '/' : m.prefix }),
      route: (path) => this.route(path)
    })
  }

  #onConnection (socket: Socket, first: Buffer, kind: ConnectionKind, listener: number): void {
    if (this.#closing && kind === 'uwsgi') {
      socket.end()
      return
    }
    // A peer whose client certificate this node verified (--tls-client-ca) is authenticated:
    // the address allow-list is for uwsgi's lack of authentication.
    if (kind === 'uwsgi' && !(socket instanceof TLSSocket && socket.authorized) && !this.#uwsgiAllowed(socket.remoteAddress)) {
      this.log.warn({ code: 'FERRY_ERR_APP_UWSGI_REFUSED', remoteAddress: socket.remoteAddress }, 'uwsgi connection from an address not in --uwsgi-allow: closed')
      socket.destroy()
      return
    }
    if (kind === 'native') {
      serveNative(socket, first, this, this.sessions, this.#closing, this.direct?.endpoints(listener))
      return
    }
    serveUwsgi(socket, first, this, this.uwsgiSockets)
  }

  /** Unix peers have no address and are always allowed; tcp peers must be in uwsgiAllow. */
  #uwsgiAllowed (address: string | undefined): boolean {
    if (address === undefined || address === '') return true
    const allow = this.options.uwsgiAllow
    return allow.includes('*') || allow.includes(address)
  }

  onRequestDone (status: number, ms: number, mount: Mount | null): void {
    this.metrics.requestDone(status, ms)
    // one mount: its figures are the server's (no second count on the hot path)
    if (mount !== null && this.router.mounts.length > 1) mount.metrics.requestDone(status, ms)
  }

  /**
   * SIGHUP, first part: read --tls-cert/--tls-key/--tls-client-ca again and give them to every
   * tls:// listener for new connections (open ones keep theirs: nothing is dropped). Files
   * that do not load (unreadable, bad PEM, key not matching) leave the running certificates
   * in place: one FERRY_ERR_APP_TLS_RELOAD line, and false. True when reloaded; null when
   * there is no tls:// listener.
   */
  reloadTls (): boolean | null {
    if (this.#tls === null || this.#closing) return null
    const log = this.#root.child({ component: 'tls' })
    const o = this.options
    const files = { cert: o.tlsCert, key: o.tlsKey, clientCa: o.tlsClientCa }
    let next: ListenerTls
    try {
      next = reloadListenerTls(o)
      for (const l of this.listeners) l.setTls?.(next)
    } catch (err) {
      const e = err as FerryError
      log.error({ code: 'FERRY_ERR_APP_TLS_RELOAD', err: e.message, ...files }, 'TLS certificates not reloaded: keeping the running ones')
      return false
    }
    this.#tls = next
    log.info(files, 'TLS certificates reloaded: new connections use them')
    return true
  }

  /**
   * SIGHUP: load every mount's handler module (and middleware) again into fresh pools. New
   * requests go to the new pools as soon as all of them are ready; the old pools finish what
   * they have, then their threads end. If any new code fails to load, every old pool keeps
   * serving (a reload is all or nothing). CGI mounts need nothing: each request runs the
   * program from disk anyway. The TLS files are re-read first (reloadTls), at once and
   * whatever the handler does: a certificate does not wait for threads to start, and a
   * second SIGHUP during a slow handler reload still picks up files replaced since.
   */
  reload (): Promise<void> {
    this.reloadTls()
    if (this.#reloading !== null) return this.#reloading
    this.#reloading = (async () => {
      this.#generation++
      const fetchMounts = this.router.mounts.filter((m) => m.dispatcher instanceof Pool)
      const next = fetchMounts.map((m) => this.#newPool(m.options))
      try {
        await Promise.all(next.map((p) => p.ready()))
      } catch (err) {
        this.log.error({ err, code: (err as FerryError)?.code ?? 'FERRY_ERR_APP_HANDLER_LOAD' }, 'reload failed: the new handler did not load; keeping the running one')
        await Promise.all(next.map((p) => p.destroy()))
        return
      }
      const gen = this.#generation
      fetchMounts.forEach((m, i) => {
        const old = m.dispatcher as Pool
        m.dispatcher = next[i]!
        this.#draining.add(old)
        old.drain().then(() => old.destroy()).then(() => {
          this.#draining.delete(old)
          this.log.info({ generation: gen - 1, mount: m.label }, 'old pool drained')
        })
      })
      this.log.info({ generation: gen, mounts: fetchMounts.map((m) => m.label) }, 'reloaded: new requests go to the new pool; the old pool drains')
      // the new code loaded: the direct threads are replaced one at a time with fresh ones
      await this.direct?.reload()
    })().finally(() => { this.#reloading = null })
    return this.#reloading
  }

  /**
   * SIGTERM: GOAWAY on every native connection, close the listeners (unix socket files are
   * removed), let in-flight requests finish within gracefulTimeout, then close everything.
   * Resolves true when every request finished in time.
   */
  async shutdown (): Promise<boolean> {
    if (this.#closing) return false
    this.#closing = true
    this.log.info({ gracefulTimeout: this.options.gracefulTimeout }, 'shutting down: GOAWAY sent, draining in-flight requests')
    for (const l of this.listeners) closeListener(l)
    this.listeners = []
    // A native session drains in two phases: requests the front sent before it read the first
    // GOAWAY still arrive until the final one, and are served, not refused. Stop dispatching
    // only then (bounded: a front that does not answer the PING gets the final GOAWAY anyway).
    await Promise.race([
      Promise.all([...this.sessions].map((s) => s.goaway())),
      new Promise((resolve) => setTimeout(resolve, Math.min(2000, this.options.gracefulTimeout)).unref())
    ])
    const pools: { drain (): Promise<void> }[] = [...this.#pools(), ...this.#draining, ...this.#cgis()]
    const direct = this.direct?.shutdown(this.options.gracefulTimeout) ?? Promise.resolve(true)
    let drained = await drainWithin(pools, this.options.gracefulTimeout)
    if (!drained) {
      // WebSockets do not end by themselves: after the grace period they are closed with
      // 1001 (going away), so clients reconnect elsewhere; their close handshakes get a
      // short while more before anything left is failed.
      let sockets = 0
      for (const p of [...this.#pools(), ...this.#draining]) sockets += p.closeWebSockets(WsClose.GOING_AWAY, 'server shutting down')
      if (sockets > 0) {
        this.log.info({ webSockets: sockets }, 'graceful timeout passed: closing WebSockets (1001)')
        drained = await drainWithin(pools, WS_CLOSE_GRACE)
      }
      if (!drained) this.log.warn({ code: 'FERRY_ERR_APP_SHUTTING_DOWN' }, 'graceful timeout passed; failing the requests still running')
    }
    drained = await direct && drained
    await this.close()
    return drained
  }

  /** Close everything now. */
  async close (): Promise<void> {
    this.#closing = true
    for (const l of this.listeners) closeListener(l)
    this.listeners = []
    await Promise.all([...this.#pools(), ...this.#draining, ...this.#cgis()].map((p) => p.destroy()))
    await this.direct?.close()
    // let the last responses flush before the sockets go
    await new Promise((resolve) => setImmediate(resolve))
    for (const s of this.sessions) s.goaway()
    for (const s of this.uwsgiSockets) s.end()
    if (this.stats !== null) await this.stats.close()
    this.stats = null
  }
}

export { appError }
