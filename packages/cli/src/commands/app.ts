/**
 * `ferry app <handler-module> [options]`: run an app-server node.
 * Settings come from (highest first) flags, FERRY_APP_* environment variables, --config
 * <file.json> (camelCase keys), defaults. The help text is APP_HELP in index.ts.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { AppServer, type AppServerOptions, appError, attributeInlineUncaught, BUILTIN_MIDDLEWARE, DEFAULT_OPTIONS, exitFatal, logDestination, type MiddlewareSpec, type MountOptions, normalizePrefix } from '@ferry/app-server'
import pino from 'pino'

const FLAGS = {
  listen: { type: 'string', multiple: true, short: 'l' },
  'socket-mode': { type: 'string' },
  threads: { type: 'string', short: 't' },
  concurrency: { type: 'string' },
  'max-queue': { type: 'string' },
  timeout: { type: 'string' },
  'max-requests': { type: 'string' },
  'max-requests-jitter': { type: 'string' },
  'max-uncaught': { type: 'string' },
  'max-memory': { type: 'string' },
  'graceful-timeout': { type: 'string' },
  stats: { type: 'string' },
  'log-level': { type: 'string' },
  'log-stack-interval': { type: 'string' },
  config: { type: 'string', short: 'c' },
  mount: { type: 'string', multiple: true, short: 'm' },
  middleware: { type: 'string', multiple: true },
  auth: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  'uwsgi-allow': { type: 'string' },
  'max-websockets': { type: 'string' },
  direct: { type: 'string' },
  'ws-max-message': { type: 'string' }
} as const

type Raw = Record<string, unknown>

function camel (flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}

function envName (flag: string): string {
  return `FERRY_APP_${flag.replace(/-/g, '_').toUpperCase()}`
}

function bad (what: string): Error {
  return appError('FERRY_ERR_APP_OPTIONS', what)
}

function num (key: string, v: unknown, min = 0): number {
  const n = typeof v === 'number' ? v : Number(String(v).trim())
  if (!Number.isFinite(n) || n < min) throw bad(`${key} must be a number >= ${min}, got ${JSON.stringify(v)}`)
  return n
}

function int (key: string, v: unknown, min = 0): number {
  const n = num(key, v, min)
  if (!Number.isInteger(n)) throw bad(`${key} must be a whole number, got ${JSON.stringify(v)}`)
  return n
}

/** "4" → 4..4, "2:8" → 2..8, "0" → handlers on the main thread. */
function threads (v: unknown): [number, number] {
  const s = String(v).trim()
  const m = /^(\d+)(?::(\d+))?$/.exec(s)
  if (m === null) throw bad(`threads must be N or MIN:MAX, got ${JSON.stringify(v)}`)
  const min = Number(m[1])
  const max = m[2] === undefined ? min : Number(m[2])
  if (max < min) throw bad(`threads: MAX (${max}) < MIN (${min})`)
  if (min === 0 && max > 0) throw bad('threads: MIN must be at least 1 when MAX > 0 (use 0 alone for the main thread)')
  return [min, max]
}

/**
 * A built-in's name (optionally with ":argument"), else a module: a path (holds "/" or ".")
 * or a file: URL. A bare word that is no built-in is refused (a typo, not a module).
 */
function isModule (s: string): boolean {
  const colon = s.indexOf(':')
  const name = colon < 0 ? s : s.slice(0, colon)
  if (Object.hasOwn(BUILTIN_MIDDLEWARE, name)) return false
  if (s.startsWith('file:') || s.includes('/') || s.includes('.')) return true
  throw bad(`unknown middleware ${JSON.stringify(s)} (built-ins: ${Object.keys(BUILTIN_MIDDLEWARE).join(', ')}; or a module path like ./mw.ts)`)
}

function moduleUrl (s: string): string {
  return s.startsWith('file:') ? s : pathToFileURL(resolvePath(s)).href
}

/**
 * One middleware from a flag word or a config entry:
 *   "compress", "request-id", "cors" (any origin), "cors:https://a.example|https://b.example",
 *   "body-limit:1m", "./mw.ts"; or in config {"name":"cors","origins":[…],"credentials":true},
 *   {"module":"./mw.ts"}.
 */
function middlewareSpec (v: unknown): MiddlewareSpec {
  if (typeof v === 'string') {
    const s = v.trim()
    if (isModule(s)) return { name: s, url: moduleUrl(s) }
    const colon = s.indexOf(':')
    const name = colon < 0 ? s : s.slice(0, colon)
    const arg = colon < 0 ? undefined : s.slice(colon + 1)
    if (arg === undefined) return { name }
    if (name === 'body-limit') return { name, options: { limit: arg } }
    if (name === 'cors') return { name, options: { origins: arg.split('|') } }
    if (name === 'compress') return { name, options: { encodings: arg.split('|') } }
    throw bad(`middleware ${JSON.stringify(s)}: ${name} takes no argument`)
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const { name, module, ...options } = v as Record<string, unknown>
    if (typeof module === 'string') {
      if (name !== undefined || Object.keys(options).length > 0) throw bad('middleware {"module": …} takes no other keys')
      return { name: module, url: moduleUrl(module) }
    }
    if (typeof name !== 'string') throw bad(`middleware entry needs "name" (a built-in) or "module": ${JSON.stringify(v)}`)
    return { name, options }
  }
  throw bad(`middleware must be a name, a module path or an object, got ${JSON.stringify(v)}`)
}

function middlewareList (v: unknown): MiddlewareSpec[] {
  const items = Array.isArray(v) ? v : [v]
  const out: MiddlewareSpec[] = []
  for (const item of items) {
    if (typeof item === 'string') for (const w of item.split(',')) { if (w.trim() !== '') out.push(middlewareSpec(w)) }
    else out.push(middlewareSpec(item))
  }
  return out
}

/** "--mount /api=./api.ts", "--mount /cgi-bin=cgi:./cgi-bin/" */
function mountFlag (v: string): MountOptions {
  const eq = v.indexOf('=')
  if (eq < 0) throw bad(`--mount takes PREFIX=MODULE or PREFIX=cgi:FOLDER, got ${JSON.stringify(v)}`)
  const prefix = normalizePrefix(v.slice(0, eq))
  const target = v.slice(eq + 1)
  if (target === '' || target === 'cgi:') throw bad(`--mount ${v}: nothing to mount`)
  return target.startsWith('cgi:') ? { prefix, handler: null, cgi: target.slice(4) } : { prefix, handler: target, cgi: null }
}

const MOUNT_KEYS = ['prefix', 'handler', 'cgi', 'threads', 'concurrency', 'maxQueue', 'timeout', 'maxRequests', 'maxRequestsJitter', 'maxUncaught', 'maxMemory', 'middleware']

/** A mount from the config file: {"prefix":"/api","handler":"./api.ts","threads":"1:4","timeout":5,…} */
function mountConfig (v: unknown): MountOptions {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`mounts: each entry is an object, got ${JSON.stringify(v)}`)
  const c = v as Raw
  for (const k of Object.keys(c)) if (!MOUNT_KEYS.includes(k)) throw bad(`mounts: unknown key ${JSON.stringify(k)} (known: ${MOUNT_KEYS.join(', ')})`)
  if (typeof c.prefix !== 'string') throw bad('mounts: "prefix" is required, e.g. "/api"')
  const where = `mount ${c.prefix}`
  if ((typeof c.handler === 'string') === (typeof c.cgi === 'string')) throw bad(`${where}: give exactly one of "handler" (a module) or "cgi" (a folder)`)
  const m: MountOptions = { prefix: normalizePrefix(c.prefix), handler: typeof c.handler === 'string' ? c.handler : null, cgi: typeof c.cgi === 'string' ? c.cgi : null }
  if (c.threads !== undefined) [m.threadsMin, m.threadsMax] = threads(c.threads)
  if (c.concurrency !== undefined) m.concurrency = int(`${where}: concurrency`, c.concurrency, 1)
  if (c.maxQueue !== undefined) m.maxQueue = int(`${where}: maxQueue`, c.maxQueue, 0)
  if (c.timeout !== undefined) m.timeout = Math.round(num(`${where}: timeout`, c.timeout) * 1000)
  if (c.maxRequests !== undefined) m.maxRequests = int(`${where}: maxRequests`, c.maxRequests, 0)
  if (c.maxRequestsJitter !== undefined) m.maxRequestsJitter = int(`${where}: maxRequestsJitter`, c.maxRequestsJitter, 0)
  if (c.maxUncaught !== undefined) m.maxUncaught = int(`${where}: maxUncaught`, c.maxUncaught, 0)
  if (c.maxMemory !== undefined) m.maxMemory = int(`${where}: maxMemory`, c.maxMemory, 0)
  if (c.middleware !== undefined) {
    if (m.cgi !== null) throw bad(`${where}: CGI mounts take no middleware (middleware runs in the worker threads; CGI programs do not)`)
    m.middleware = middlewareList(c.middleware)
  }
  if (m.cgi !== null) {
    for (const k of ['threads', 'maxRequests', 'maxRequestsJitter', 'maxUncaught', 'maxMemory']) {
      if (c[k] !== undefined) throw bad(`${where}: ${k} is a worker-pool setting; a CGI mount runs a process per request (use concurrency, maxQueue, timeout)`)
    }
  }
  return m
}

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export function resolveOptions (argv: string[], env: NodeJS.ProcessEnv = process.env): AppServerOptions {
  const { values, positionals } = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true })
  const flags = values as Raw
  let config: Raw = {}
  const configPath = (flags.config as string | undefined) ?? env.FERRY_APP_CONFIG
  if (configPath !== undefined) {
    try {
      config = JSON.parse(readFileSync(configPath, 'utf8')) as Raw
    } catch (cause) {
      throw appError('FERRY_ERR_APP_OPTIONS', `--config ${configPath}: ${(cause as Error).message}`, { cause })
    }
    const known = new Set([...Object.keys(FLAGS).map(camel), 'handler', 'mounts'])
    for (const k of Object.keys(config)) if (!known.has(k)) throw bad(`--config ${configPath}: unknown key ${JSON.stringify(k)}`)
  }
  const pick = (flag: keyof typeof FLAGS): unknown => {
    if (flags[flag] !== undefined) return flags[flag]
    const e = env[envName(flag)]
    if (e !== undefined && e !== '') return flag === 'listen' ? e.split(/[\s,]+/).filter(Boolean) : e
    return config[camel(flag)]
  }
  const handler = positionals[0] ?? env.FERRY_APP_HANDLER ?? (config.handler as string | undefined) ?? null
  if (positionals.length > 1) throw bad(`unexpected arguments: ${positionals.slice(1).join(' ')}`)
  // flags replace the config file's mounts (as any flag replaces its key)
  let mounts: MountOptions[]
  if (flags.mount !== undefined) mounts = (flags.mount as string[]).map(mountFlag)
  else if (env.FERRY_APP_MOUNT !== undefined && env.FERRY_APP_MOUNT !== '') mounts = env.FERRY_APP_MOUNT.split(/\s+/).filter(Boolean).map(mountFlag)
  else if (config.mounts !== undefined) {
    if (!Array.isArray(config.mounts)) throw bad('mounts must be a list of objects')
    mounts = config.mounts.map(mountConfig)
  } else mounts = []
  if (handler === null && mounts.length === 0) throw bad('missing <handler-module> (ferry app ./app.ts) or --mount PREFIX=MODULE')
  if (handler !== null && mounts.some((m) => m.prefix === '')) throw bad(`both a handler module (${handler}) and a mount at / given`)
  const o: AppServerOptions = { ...DEFAULT_OPTIONS, handler, mounts }
  const mw = pick('middleware')
  if (mw !== undefined) o.middleware = middlewareList(mw)
  const listen = pick('listen')
  if (listen !== undefined) o.listen = Array.isArray(listen) ? listen.map(String) : [String(listen)]
  const mode = pick('socket-mode')
  if (mode !== undefined) {
    const s = String(mode)
    if (!/^[0-7]{3,4}$/.test(s)) throw bad(`socket-mode must be octal like 660, got ${JSON.stringify(mode)}`)
    o.socketMode = Number.parseInt(s, 8)
  }
  const t = pick('threads')
  if (t !== undefined) [o.threadsMin, o.threadsMax] = threads(t)
  else o.threadsMin = o.threadsMax = availableParallelism()
  const setInt = (flag: keyof typeof FLAGS, key: 'concurrency' | 'maxQueue' | 'maxRequests' | 'maxRequestsJitter' | 'maxUncaught' | 'maxMemory', min: number): void => {
    const v = pick(flag)
    if (v !== undefined) o[key] = int(flag, v, min)
  }
  setInt('concurrency', 'concurrency', 1)
  setInt('max-queue', 'maxQueue', 0)
  setInt('max-requests', 'maxRequests', 0)
  setInt('max-requests-jitter', 'maxRequestsJitter', 0)
  setInt('max-uncaught', 'maxUncaught', 0)
  setInt('max-memory', 'maxMemory', 0)
  const timeout = pick('timeout')
  if (timeout !== undefined) o.timeout = Math.round(num('timeout', timeout) * 1000)
  const grace = pick('graceful-timeout')
  if (grace !== undefined) o.gracefulTimeout = Math.round(num('graceful-timeout', grace) * 1000)
  const stats = pick('stats')
  if (stats !== undefined) o.stats = String(stats)
  const auth = pick('auth')
  if (auth !== undefined && String(auth) !== '') o.auth = String(auth)
  // PEM files for tls:// listeners; the server checks them against --listen (a tls:// address
  // needs a cert and key; TLS files with no tls:// address are an error)
  for (const [flag, key] of [['tls-cert', 'tlsCert'], ['tls-key', 'tlsKey'], ['tls-client-ca', 'tlsClientCa']] as const) {
    const v = pick(flag)
    if (v !== undefined && String(v) !== '') o[key] = String(v)
  }
  const allow = pick('uwsgi-allow')
  if (allow !== undefined) {
    const list = Array.isArray(allow) ? allow.map(String) : String(allow).split(/[\s,]+/).filter(Boolean)
    if (list.length === 0) throw bad('uwsgi-allow must list addresses (or * for any)')
    o.uwsgiAllow = list
  }
  const direct = pick('direct')
  if (direct !== undefined) o.direct = int('direct', direct, 0)
  const maxWs = pick('max-websockets')
  if (maxWs !== undefined) o.maxWebSockets = int('max-websockets', maxWs, 0)
  const wsMax = pick('ws-max-message')
  if (wsMax !== undefined) {
    const m = /^(\d+)\s*([kmg]?)i?b?$/i.exec(String(wsMax).trim())
    if (m === null) throw bad(`ws-max-message must be a size like 1048576, 512k, 16m; got ${JSON.stringify(wsMax)}`)
    const unit = m[2]!.toLowerCase()
    o.wsMaxMessage = Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1)
    if (o.wsMaxMessage < 1) throw bad('ws-max-message must be at least 1 byte')
  }
  const level = pick('log-level')
  if (level !== undefined) {
    if (!LEVELS.has(String(level))) throw bad(`log-level must be one of ${[...LEVELS].join(', ')}`)
    o.logLevel = String(level)
  }
  const stackEvery = pick('log-stack-interval')
  if (stackEvery !== undefined) o.logStackInterval = Math.round(num('log-stack-interval', stackEvery) * 1000)
  return o
}

export async function run (argv: string[]): Promise<number> {
  const options = resolveOptions(argv)
  const log = pino({ level: options.logLevel, base: { pid: process.pid } }, logDestination())
  // Handlers inline on this thread (--threads 0, for a mount or all): an uncaught exception
  // that a request's async work raised fails that request only, as in a pool worker. Past
  // --max-uncaught of them the node drains and exits 1 — there is no thread to replace it
  // with; its supervisor starts a fresh process. One no running request owns ends the
  // process at once, with the error logged (as Node would, but as a log line).
  let drainAndExit: (() => void) | null = null
  let maxUncaughtReached = false
  if (options.maxUncaught > 0) {
    attributeInlineUncaught(() => {
      maxUncaughtReached = true
      log.error({ maxUncaught: options.maxUncaught }, 'max-uncaught reached by handlers on the main thread (--threads 0): draining, then exiting with status 1 for the supervisor to start a fresh process')
      drainAndExit?.()
    }, (err, origin) => {
      exitFatal(log, { err, origin, code: 'FERRY_ERR_APP_UNCAUGHT' }, 'uncaught exception outside any running request: the process ends')
    })
  }
  let server: AppServer
  try {
    server = await AppServer.start(options, log)
  } catch (err) {
    const e = err as { code?: string, message?: string }
    log.fatal({ err, code: e.code }, e.message ?? 'start failed')
    log.flush()
    return 1
  }
  // The "listening" lines are a contract scripts read: written whatever --log-level says.
  const announce = log.child({}, { level: 'info' })
  announce.info({ addresses: server.addresses, threads: options.threadsMax === 0 ? 'main' : `${options.threadsMin}:${options.threadsMax}`, ...(server.direct !== null ? { direct: server.direct.describe() } : {}) }, 'listening')
  if (server.stats !== null) announce.info({ address: server.stats.text }, 'stats listening')
  log.flush() // lines are written in batches: the announcement goes out now
  return await new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: string, status = 0): void => {
      if (stopping) return
      stopping = true
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      process.off('SIGHUP', onHup)
      log.info({ signal }, 'stopping')
      server.shutdown().then((drained) => {
        log.info({ drained }, 'stopped')
        log.flush()
        // Nothing should be left, but a handler's own timers must not keep the process alive.
        setTimeout(() => process.exit(status), 2000).unref()
        resolve(status)
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    const onTerm = (): void => stop('SIGTERM')
    const onInt = (): void => stop('SIGINT')
    const onHup = (): void => {
      // the TLS files are re-read first, at once (logged by the server: reloaded, or
      // FERRY_ERR_APP_TLS_RELOAD and the running certificates kept), then the handler
      log.info({ signal: 'SIGHUP' }, options.tlsCert !== null ? 'reloading the TLS certificates and the handler' : 'reloading the handler')
      server.reload().catch((err: unknown) => log.error({ err }, 'reload failed'))
    }
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onInt)
    process.on('SIGHUP', onHup)
    drainAndExit = () => stop('max-uncaught', 1)
    if (maxUncaughtReached) drainAndExit()
  })
}
