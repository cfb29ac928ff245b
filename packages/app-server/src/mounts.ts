/**
 * Mounts: several applications in one app-server, chosen by URL prefix (uWSGI `mount=` with
 * `manage-script-name`, WSGI's SCRIPT_NAME). The longest prefix wins, matched on whole path
 * segments of the raw request path (as the client sent it, before percent-decoding):
 * `/api` matches `/api`, `/api/x` and `/api?q`, never `/apix`. `/` (stored as '') matches all.
 *
 * A fetch mount runs its handler in its own pool (its own threads, queue and timeout), so a
 * slow application cannot starve another; a CGI mount runs a program per request (cgi.ts).
 * Both are a `Dispatcher`: the connections (native.ts, uwsgi-conn.ts) do not tell them apart.
 */
import type { FerryError } from '@ferry/protocol/core'
import { appError } from './errors.js'
import { Metrics } from './metrics.js'
import type { Exchange } from './pool.js'

/** One mount's settings; anything not given comes from the server-wide options. */
export interface MountOptions {
  /** '/api' (no trailing slash); '' is the root mount '/'. */
  prefix: string
  /** Handler module (fetch mount), or null for a CGI mount. */
  handler: string | null
  /** Folder of CGI programs (CGI mount), or null. */
  cgi: string | null
  threadsMin?: number
  threadsMax?: number
  /** Fetch: requests per thread at once. CGI: programs running at once. */
  concurrency?: number
  maxQueue?: number
  /** ms; fetch: until the response head; CGI: the program's whole run. */
  timeout?: number
  maxRequests?: number
  maxRequestsJitter?: number
  maxUncaught?: number
  maxMemory?: number
  /** Middleware for this mount, run after the server-wide ones. */
  middleware?: MiddlewareSpec[]
}

/**
 * A middleware: a built-in by name ('request-id', 'compress', 'cors', 'body-limit') with its
 * options, or a module (`url`, a file: URL) whose default export is
 * `(request, context, next) => Response | Promise<Response>`. Plain JSON: it crosses into
 * the worker threads.
 */
export interface MiddlewareSpec {
  name: string
  url?: string
  options?: Record<string, unknown>
}

/** What a connection hands a request to: a pool (fetch mount) or a CGI runner. */
export interface Dispatcher {
  /** Accept a request; returns a ticket for the calls below, or the error to answer with. */
  submit (ex: Exchange): object | FerryError
  body (ticket: object, chunk: Uint8Array): void
  bodyEnd (ticket: object): void
  cancel (ticket: object): void
  credit (ticket: object, n: number): void
}

export interface Mount {
  readonly prefix: string
  /** The prefix as users write it ('/' for the root mount): the stats label. */
  readonly label: string
  readonly options: MountOptions
  dispatcher: Dispatcher
  readonly metrics: Metrics
}

export function newMount (options: MountOptions, dispatcher: Dispatcher): Mount {
  return { prefix: options.prefix, label: options.prefix === '' ? '/' : options.prefix, options, dispatcher, metrics: new Metrics() }
}

/** '/api/' → '/api', '/' → ''; a prefix must start with '/' and hold no '?', '#', '%' or '..'. */
export function normalizePrefix (raw: string): string {
  const p = raw.trim()
  if (!p.startsWith('/') || /[?#%\s]/.test(p) || p.split('/').some((s) => s === '..' || s === '.')) {
    throw appError('FERRY_ERR_APP_OPTIONS', `mount prefix must be a path like /api, got ${JSON.stringify(raw)}`)
  }
  return p.replace(/\/+$/, '')
}

/** Does `path` (path and query, raw) fall under `prefix` (normalized, non-empty)? */
export function underPrefix (path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false
  if (path.length === prefix.length) return true
  const c = path.charCodeAt(prefix.length)
  return c === 47 /* / */ || c === 63 /* ? */
}

/** The path the mounted application routes on: the prefix removed, at least '/'. */
export function stripPrefix (path: string, prefix: string): string {
  const rest = path.slice(prefix.length)
  return rest === '' || rest.charCodeAt(0) === 63 ? `/${rest}` : rest
}

/**
 * Longest-prefix routing over a fixed set of mounts. With one root mount the answer is that
 * mount after a single check (the hot path of `ferry app ./h.ts`).
 */
export class Router {
  readonly mounts: Mount[]
  #only: Mount | null

  constructor (mounts: Mount[]) {
    const seen = new Set<string>()
    for (const m of mounts) {
      if (seen.has(m.prefix)) throw appError('FERRY_ERR_APP_OPTIONS', `two mounts at ${m.label}`)
      seen.add(m.prefix)
    }
    this.mounts = [...mounts].sort((a, b) => b.prefix.length - a.prefix.length)
    this.#only = this.mounts.length === 1 && this.mounts[0]!.prefix === '' ? this.mounts[0]! : null
  }

  route (path: string): Mount | null {
    if (this.#only !== null) return this.#only
    for (const m of this.mounts) {
      if (m.prefix === '' || underPrefix(path, m.prefix)) return m
    }
    return null
  }
}
