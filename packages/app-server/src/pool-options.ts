/**
 * The dispatcher's settings: what a user gives per pool (flags, config, per mount) and what
 * the server adds for each pool it builds (pool.ts).
 */
import type { Logger } from 'pino'
import type { MiddlewareSpec } from './mounts.js'

/** The pool settings a user gives (flags, config, per mount); the server's options extend them. */
export interface PoolSettings {
  threadsMin: number
  threadsMax: number
  /** Requests one thread runs at once (async handlers overlap their I/O). */
  concurrency: number
  maxQueue: number
  /** ms until the response head; 0 = none. */
  timeout: number
  maxRequests: number
  maxRequestsJitter: number
  /**
   * Uncaught exceptions a thread survives (each fails only its request) before it is
   * recycled as max-requests recycles; 0 = the first one ends the thread (Node's default).
   */
  maxUncaught: number
  /** MiB of old-generation heap per worker; 0 = Node's default. */
  maxMemory: number
  /** ms a thread above the minimum may sit idle before it is retired. */
  idleTimeout: number
  logLevel: string
  /** ms: the same error logs its stack once per interval per thread; 0 = every time. */
  logStackInterval: number
  /** Largest WebSocket message a handler receives, bytes. */
  wsMaxMessage: number
}

export interface PoolOptions extends PoolSettings {
  handlerUrl: string
  /** The mount prefix ('' for the root mount): stripped from the path the handler sees. */
  prefix: string
  /** Middleware around the handler, outermost first ([] = the handler alone). */
  middleware: MiddlewareSpec[]
  generation: number
  log: Logger
  /**
   * The logger of handlers run inline (--threads 0, a --direct thread): the pool's bindings
   * with component 'inline' (default: `log`). A child of `log` would carry 'component' twice.
   */
  inlineLog?: Logger
}
