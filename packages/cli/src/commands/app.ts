/**
 * `ferry app <handler-module> [options]`: run an app-server node.
 * Settings come from (highest first) flags, FERRY_APP_* environment variables, --config
 * <file.json> (camelCase keys), defaults. The help text is APP_HELP in index.ts.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { AppServer, type AppServerOptions, appError, DEFAULT_OPTIONS } from '@ferry/app-server'
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
  'max-memory': { type: 'string' },
  'graceful-timeout': { type: 'string' },
  stats: { type: 'string' },
  'log-level': { type: 'string' },
  config: { type: 'string', short: 'c' }
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
    const known = new Set([...Object.keys(FLAGS).map(camel), 'handler'])
    for (const k of Object.keys(config)) if (!known.has(k)) throw bad(`--config ${configPath}: unknown key ${JSON.stringify(k)}`)
  }
  const pick = (flag: keyof typeof FLAGS): unknown => {
    if (flags[flag] !== undefined) return flags[flag]
    const e = env[envName(flag)]
    if (e !== undefined && e !== '') return flag === 'listen' ? e.split(/[\s,]+/).filter(Boolean) : e
    return config[camel(flag)]
  }
  const handler = positionals[0] ?? env.FERRY_APP_HANDLER ?? (config.handler as string | undefined)
  if (handler === undefined) throw bad('missing <handler-module> (ferry app ./app.ts)')
  if (positionals.length > 1) throw bad(`unexpected arguments: ${positionals.slice(1).join(' ')}`)
  const o: AppServerOptions = { ...DEFAULT_OPTIONS, handler }
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
  const setInt = (flag: keyof typeof FLAGS, key: 'concurrency' | 'maxQueue' | 'maxRequests' | 'maxRequestsJitter' | 'maxMemory', min: number): void => {
    const v = pick(flag)
    if (v !== undefined) o[key] = int(flag, v, min)
  }
  setInt('concurrency', 'concurrency', 1)
  setInt('max-queue', 'maxQueue', 0)
  setInt('max-requests', 'maxRequests', 0)
  setInt('max-requests-jitter', 'maxRequestsJitter', 0)
  setInt('max-memory', 'maxMemory', 0)
  const timeout = pick('timeout')
  if (timeout !== undefined) o.timeout = Math.round(num('timeout', timeout) * 1000)
  const grace = pick('graceful-timeout')
  if (grace !== undefined) o.gracefulTimeout = Math.round(num('graceful-timeout', grace) * 1000)
  const stats = pick('stats')
  if (stats !== undefined) o.stats = String(stats)
  const level = pick('log-level')
  if (level !== undefined) {
    if (!LEVELS.has(String(level))) throw bad(`log-level must be one of ${[...LEVELS].join(', ')}`)
    o.logLevel = String(level)
  }
  return o
}

export async function run (argv: string[]): Promise<number> {
  const options = resolveOptions(argv)
  const log = pino({ level: options.logLevel, base: { pid: process.pid } })
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
  announce.info({ addresses: server.addresses, threads: options.threadsMax === 0 ? 'main' : `${options.threadsMin}:${options.threadsMax}` }, 'listening')
  if (server.stats !== null) announce.info({ address: server.stats.text }, 'stats listening')
  return await new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      process.off('SIGHUP', onHup)
      log.info({ signal }, 'stopping')
      server.shutdown().then((drained) => {
        log.info({ drained }, 'stopped')
        log.flush()
        // Nothing should be left, but a handler's own timers must not keep the process alive.
        setTimeout(() => process.exit(0), 2000).unref()
        resolve(0)
      }, (err: unknown) => {
        log.error({ err }, 'shutdown failed')
        resolve(1)
      })
    }
    const onTerm = (): void => stop('SIGTERM')
    const onInt = (): void => stop('SIGINT')
    const onHup = (): void => {
      log.info({ signal: 'SIGHUP' }, 'reloading the handler')
      server.reload().catch((err: unknown) => log.error({ err }, 'reload failed'))
    }
    process.on('SIGTERM', onTerm)
    process.on('SIGINT', onInt)
    process.on('SIGHUP', onHup)
  })
}
