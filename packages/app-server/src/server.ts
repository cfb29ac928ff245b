/**
 * The app-server process: listeners (native + uwsgi on each), the current pool, and the
 * lifecycle — graceful shutdown (GOAWAY, stop accepting, drain, exit) and reload (a fresh
 * pool takes new requests at once while the old one drains).
 */
import type { Socket } from 'node:net'
import { availableParallelism } from 'node:os'
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseAddress, type Session } from '@ferry/protocol'
import type { Logger } from 'pino'
import { appError } from './errors.js'
import { type BoundListener, closeListener, type ConnectionKind, listen } from './listener.js'
import { Metrics } from './metrics.js'
import { type ConnectionHost, serveNative } from './native.js'
import { Pool, type PoolOptions } from './pool.js'
import { startStats, type StatsServer } from './stats.js'
import { serveUwsgi } from './uwsgi-conn.js'

export interface AppServerOptions {
  /** Path (or file: URL) of the handler module. */
  handler: string
  listen: string[]
  /** e.g. 0o660; null leaves the umask's mode. */
  socketMode: number | null
  threadsMin: number
  threadsMax: number
  concurrency: number
  maxQueue: number
  timeout: number
  maxRequests: number
  maxRequestsJitter: number
  maxMemory: number
  gracefulTimeout: number
  idleTimeout: number
  stats: string | null
  logLevel: string
}

export const DEFAULT_OPTIONS: Omit<AppServerOptions, 'handler'> = {
  listen: ['tcp://127.0.0.1:8001'],
  socketMode: null,
  threadsMin: availableParallelism(),
  threadsMax: availableParallelism(),
  concurrency: 64,
  maxQueue: 1024,
  timeout: 30000,
  maxRequests: 0,
  maxRequestsJitter: 0,
  maxMemory: 0,
  gracefulTimeout: 30000,
  idleTimeout: 10000,
  stats: null,
  logLevel: 'info'
}

function handlerUrl (handler: string, generation: number): string {
  const base = handler.startsWith('file:') ? handler : pathToFileURL(resolvePath(handler)).href
  return generation === 0 ? base : `${base}?ferry-reload=${generation}`
}

export class AppServer implements ConnectionHost {
  readonly options: AppServerOptions
  readonly log: Logger
  readonly metrics = new Metrics()
  pool: Pool
  listeners: BoundListener[] = []
  stats: StatsServer | null = null
  readonly sessions = new Set<Session>()
  readonly uwsgiSockets = new Set<Socket>()
  #generation = 0
  #draining = new Set<Pool>()
  #closing = false
  #reloading: Promise<void> | null = null

  #root: Logger

  /** `log` is the process's root logger; components log through children of it. */
  private constructor (options: AppServerOptions, log: Logger) {
    this.options = options
    this.#root = log
    this.log = log.child({ component: 'app' })
    this.pool = this.#newPool()
  }

  /** Load the handler into the pool, then listen. Rejects (and cleans up) on any failure. */
  static async start (options: AppServerOptions, log: Logger): Promise<AppServer> {
    const addresses = options.listen.map((a) => parseAddress(a))
    const server = new AppServer(options, log)
    try {
      await server.pool.ready()
      for (const a of addresses) {
        server.listeners.push(await listen(a, options.socketMode, (socket, first, kind) => server.#onConnection(socket, first, kind)))
      }
      if (options.stats !== null) server.stats = await startStats(parseAddress(options.stats), server)
    } catch (err) {
      await server.close()
      throw err
    }
    return server
  }

  get addresses (): string[] { return this.listeners.map((l) => l.text) }
  get draining (): number { return this.#draining.size }

  #newPool (): Pool {
    const o = this.options
    const opts: PoolOptions = {
      handlerUrl: handlerUrl(o.handler, this.#generation),
      generation: this.#generation,
      threadsMin: o.threadsMax === 0 ? 0 : o.threadsMin,
      threadsMax: o.threadsMax,
      concurrency: o.concurrency,
      maxQueue: o.maxQueue,
      timeout: o.timeout,
      maxRequests: o.maxRequests,
      maxRequestsJitter: o.maxRequestsJitter,
      maxMemory: o.maxMemory,
      idleTimeout: o.idleTimeout,
      logLevel: o.logLevel,
      log: this.#root.child({ component: 'pool', generation: this.#generation })
    }
    return new Pool(opts)
  }

  #onConnection (socket: Socket, first: Buffer, kind: ConnectionKind): void {
    if (this.#closing && kind === 'uwsgi') {
      socket.end()
      return
    }
    if (kind === 'native') {
      serveNative(socket, first, this, this.sessions, this.#closing)
      return
    }
    serveUwsgi(socket, first, this, this.uwsgiSockets)
  }

  onRequestDone (status: number, ms: number): void {
    this.metrics.requestDone(status, ms)
  }

  /**
   * SIGHUP: load the handler module again into a fresh pool. New requests go to the new pool
   * as soon as it is ready; the old pool finishes what it has, then its threads end.
   * If the new code fails to load, the old pool keeps serving.
   */
  reload (): Promise<void> {
    if (this.#reloading !== null) return this.#reloading
    this.#reloading = (async () => {
      this.#generation++
      const next = this.#newPool()
      try {
        await next.ready()
      } catch (err) {
        this.log.error({ err, code: 'FERRY_ERR_APP_HANDLER_LOAD' }, 'reload failed: the new handler did not load; keeping the running one')
        await next.destroy()
        return
      }
      const old = this.pool
      this.pool = next
      this.#draining.add(old)
      this.log.info({ generation: this.#generation }, 'reloaded: new requests go to the new pool; the old pool drains')
      old.drain().then(() => old.destroy()).then(() => {
        this.#draining.delete(old)
        this.log.info({ generation: this.#generation - 1 }, 'old pool drained')
      })
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
    for (const s of this.sessions) s.goaway()
    for (const l of this.listeners) closeListener(l)
    this.listeners = []
    const pools = [this.pool, ...this.#draining]
    let timer: NodeJS.Timeout | undefined
    const drained = await Promise.race([
      Promise.all(pools.map((p) => p.drain())).then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), this.options.gracefulTimeout) })
    ])
    clearTimeout(timer)
    if (!drained) this.log.warn({ code: 'FERRY_ERR_APP_SHUTTING_DOWN' }, 'graceful timeout passed; failing the requests still running')
    await this.close()
    return drained
  }

  /** Close everything now. */
  async close (): Promise<void> {
    this.#closing = true
    for (const l of this.listeners) closeListener(l)
    this.listeners = []
    await Promise.all([this.pool, ...this.#draining].map((p) => p.destroy()))
    // let the last responses flush before the sockets go
    await new Promise((resolve) => setImmediate(resolve))
    for (const s of this.sessions) s.goaway()
    for (const s of this.uwsgiSockets) s.end()
    if (this.stats !== null) await this.stats.close()
    this.stats = null
  }
}

export { appError }
