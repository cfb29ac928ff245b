/**
 * `ferry front`: the front web server. Flags > FERRY_FRONT_* environment > config file >
 * defaults. Logs exactly one `"msg":"listening"` line with the bound addresses (a contract
 * scripts rely on). SIGHUP re-reads the config file's upstreams (new nodes connect, removed
 * ones drain), the --upstream-tls-* files (new connections to nodes use them) and the
 * --tls-cert/--tls-key files (new client connections get that certificate), with or without
 * a config file; SIGTERM/SIGINT stop accepting, finish requests in flight, exit.
 */
import { existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs'
import { dirname, extname, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { exitFatal, logDestination } from '@ferry/app-server'
import { type ClientTls, createFront, type FerryOptions, type Forwarder, type FrontOptions, reloadClientTls, type StaticConfig } from '@ferry/front'
import { type Address, FerryError, formatAddress, parseAddress } from '@ferry/protocol'
import pino, { type Logger } from 'pino'

/** TLS towards tls:// nodes as a config file says it: file names (relative to the file). */
interface UpstreamTlsFiles {
  ca?: string
  cert?: string
  key?: string
  servername?: string
}

/** The front's own HTTPS certificate and key (towards clients): file names. */
interface ClientTlsFiles {
  cert: string
  key: string
}

/** What a config file may say: everything the flags can, plus pools and prefix routes. */
interface FrontConfig extends Omit<FerryOptions, 'upstreamTls'> {
  listen?: string
  tls?: { cert: string, key: string }
  upstreamTls?: UpstreamTlsFiles
  http2?: boolean
  maxHeaderSize?: number
  trustRequestId?: boolean
  logLevel?: string
}

const FLAGS = {
  listen: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  static: { type: 'string', multiple: true },
  config: { type: 'string', short: 'c' },
  'max-body': { type: 'string' },
  timeout: { type: 'string' },
  'idle-timeout': { type: 'string' },
  'connect-timeout': { type: 'string' },
  sessions: { type: 'string' },
  'max-fails': { type: 'string' },
  'fail-timeout': { type: 'string' },
  'health-interval': { type: 'string' },
  'max-waiting': { type: 'string' },
  'no-retry': { type: 'boolean' },
  'no-direct': { type: 'boolean' },
  'retry-after': { type: 'string' },
  'access-log': { type: 'boolean' },
  'no-access-log': { type: 'boolean' },
  auth: { type: 'string' },
  'forwarded-allow-ips': { type: 'string' },
  'trust-request-id': { type: 'boolean' },
  'server-name': { type: 'string' },
  'dns-interval': { type: 'string' },
  resolver: { type: 'string', multiple: true },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'upstream-tls-ca': { type: 'string' },
  'upstream-tls-cert': { type: 'string' },
  'upstream-tls-key': { type: 'string' },
  'upstream-tls-servername': { type: 'string' },
  http2: { type: 'boolean' },
  'max-header-size': { type: 'string' },
  'ws-max-message': { type: 'string' },
  'ws-idle-timeout': { type: 'string' },
  'no-websocket': { type: 'boolean' },
  'log-level': { type: 'string' }
} as const

type FlagName = keyof typeof FLAGS

function fail (message: string): never {
  throw new FerryError('FERRY_ERR_FRONT_CONFIG', message, { statusCode: 500 })
}

/** `10m`, `1g`, `512k`, `1048576` → bytes. */
export function parseSize (name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(v.trim())
  if (m === null) fail(`--${name}: expected a size like 1048576, 512k, 10m, 1g; got ${JSON.stringify(v)}`)
  const unit = (m[2] ?? '').toLowerCase()[0]
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1
  return Math.floor(Number(m[1]) * mult)
}

/** `500`, `500ms`, `5s`, `2m` → ms. */
export function parseDuration (name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(v.trim())
  if (m === null) fail(`--${name}: expected a duration like 500, 500ms, 5s, 2m; got ${JSON.stringify(v)}`)
  const mult = m[2] === 's' ? 1000 : m[2] === 'm' ? 60000 : m[2] === 'h' ? 3600000 : 1
  return Math.round(Number(m[1]) * mult)
}

function parseCount (name: string, v: string): number {
  if (!/^\d+$/.test(v.trim())) fail(`--${name}: expected a whole number, got ${JSON.stringify(v)}`)
  return Number(v)
}

/** `dir[:prefix]` */
function parseStatic (v: string, base: string): StaticConfig {
  const i = v.lastIndexOf(':/')
  const dir = i > 0 ? v.slice(0, i) : v
  const prefix = i > 0 ? v.slice(i + 1) : '/'
  return { dir: resolve(base, dir), prefix }
}

async function loadConfig (file: string): Promise<FrontConfig> {
  const path = resolve(file)
  const ext = extname(path)
  let cfg: FrontConfig
  if (ext === '.json') {
    try {
      cfg = JSON.parse(readFileSync(path, 'utf8')) as FrontConfig
    } catch (err) {
      fail(`--config ${file}: ${(err as Error).message}`)
    }
  } else {
    const url = `${pathToFileURL(path).href}?t=${Date.now()}` // a fresh copy on SIGHUP
    let mod: { default?: unknown }
    if (ext === '.ts' || ext === '.mts' || ext === '.cts') {
      let api: { tsImport: (specifier: string, parent: string) => Promise<{ default?: unknown }> }
      try {
        api = await import('tsx/esm/api' as string) as typeof api
      } catch {
        fail(`--config ${file}: loading a .ts config needs tsx (npm i -D tsx), or use .json/.mjs`)
      }
      mod = await api.tsImport(url, import.meta.url)
    } else {
      mod = await import(url) as { default?: unknown }
    }
    // A .ts file tsx compiled as CommonJS comes back as { default: { default: config } }.
    let d = mod.default as FrontConfig | (() => FrontConfig | Promise<FrontConfig>) | { default: unknown } | undefined
    if (d !== null && typeof d === 'object' && 'default' in d && Object.keys(d).length === 1) d = d.default as FrontConfig
    cfg = typeof d === 'function' ? await d() : ((d as FrontConfig | undefined) ?? fail(`--config ${file}: no default export`))
  }
  if (cfg === null || typeof cfg !== 'object') fail(`--config ${file}: expected an object`)
  const base = dirname(path)
  if (Array.isArray(cfg.static)) cfg.static = cfg.static.map((s) => ({ ...s, dir: resolve(base, s.dir) }))
  if (cfg.tls !== undefined) cfg.tls = { cert: resolve(base, cfg.tls.cert), key: resolve(base, cfg.tls.key) }
  const ut = cfg.upstreamTls
  if (ut !== undefined) {
    if (ut === null || typeof ut !== 'object') fail(`--config ${file}: upstreamTls must be an object {ca, cert, key, servername}`)
    for (const k of Object.keys(ut)) if (!['ca', 'cert', 'key', 'servername'].includes(k)) fail(`--config ${file}: upstreamTls: unknown key ${JSON.stringify(k)} (known: ca, cert, key, servername)`)
    for (const k of ['ca', 'cert', 'key'] as const) if (ut[k] !== undefined) ut[k] = resolve(base, ut[k])
  }
  return cfg
}

/** FERRY_FRONT_MAX_BODY=10m etc. (lists comma-separated) as argv-style values. */
function fromEnv (env: NodeJS.ProcessEnv): Partial<Record<FlagName, string | string[] | boolean>> {
  const out: Partial<Record<FlagName, string | string[] | boolean>> = {}
  for (const [flag, spec] of Object.entries(FLAGS) as Array<[FlagName, (typeof FLAGS)[FlagName]]>) {
    const v = env[`FERRY_FRONT_${flag.toUpperCase().replaceAll('-', '_')}`]
    if (v === undefined || v === '') continue
    if (spec.type === 'boolean') out[flag] = v !== '0' && v.toLowerCase() !== 'false'
    else if ('multiple' in spec) out[flag] = v.split(',').map((s) => s.trim()).filter((s) => s !== '')
    else out[flag] = v
  }
  return out
}

export interface Resolved {
  listen: Address
  options: FrontOptions & { logLevel: string }
  configFile: string | undefined
  /** Where the upstream TLS settings come from (flags > env > config); null: none given. */
  upstreamTlsFiles: UpstreamTlsFiles | null
  /** Where the HTTPS certificate and key come from (flags > env > config); null: plain HTTP. */
  clientTlsFiles: ClientTlsFiles | null
}

type UpstreamTlsPem = NonNullable<FerryOptions['upstreamTls']>

/** The PEM contents of the upstream TLS files. Throws FERRY_ERR_FRONT_CONFIG naming the file. */
function readUpstreamTls (files: UpstreamTlsFiles): UpstreamTlsPem {
  const readPem = (flag: string, file: string | undefined): Buffer | undefined => {
    if (file === undefined) return undefined
    try {
      return readFileSync(file)
    } catch (err) {
      fail(`--${flag} ${file}: ${(err as Error).message}`)
    }
  }
  const out: UpstreamTlsPem = {
    ca: readPem('upstream-tls-ca', files.ca),
    cert: readPem('upstream-tls-cert', files.cert),
    key: readPem('upstream-tls-key', files.key),
    servername: files.servername
  }
  for (const k of ['ca', 'cert', 'key', 'servername'] as const) if (out[k] === undefined) delete out[k]
  return out
}

/** The PEM contents of the HTTPS certificate and key. Throws FERRY_ERR_FRONT_CONFIG naming the file. */
function readClientTls (files: ClientTlsFiles): ClientTls {
  const readPem = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      fail(`--${flag} ${file}: ${(err as Error).message}`)
    }
  }
  return { cert: readPem('tls-cert', files.cert), key: readPem('tls-key', files.key) }
}

/**
 * `readTls: false` (SIGHUP) leaves the TLS files unread (`options.upstreamTls` and
 * `options.tls` unset; `upstreamTlsFiles` and `clientTlsFiles` say where they are): bad TLS
 * files then do not stop the upstream reload, and are reported on their own.
 */
export async function resolveOptions (argv: string[], env: NodeJS.ProcessEnv = process.env, readTls = true): Promise<Resolved> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof FLAGS, allowPositionals: false, strict: true }>>
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: false, strict: true })
  } catch (err) {
    fail(`${(err as Error).message} (see ferry front --help)`)
  }
  const flags = { ...fromEnv(env), ...parsed.values } as Partial<Record<FlagName, string | string[] | boolean>>
  const configFile = flags.config as string | undefined
  const cfg: FrontConfig = configFile !== undefined ? await loadConfig(configFile) : {}
  const str = (f: FlagName): string | undefined => flags[f] as string | undefined
  const o: FrontOptions & { logLevel: string } = { ...cfg, logLevel: cfg.logLevel ?? 'info' } as FrontOptions & { logLevel: string }
  delete (o as FrontConfig).listen
  if (flags.upstream !== undefined) o.upstreams = flags.upstream as string[]
  if (flags.resolver !== undefined) o.resolver = flags.resolver as string[]
  if (flags.static !== undefined) o.static = (flags.static as string[]).map((s) => parseStatic(s, process.cwd()))
  const num = (f: FlagName, key: keyof FrontOptions, parse: (n: string, v: string) => number): void => {
    const v = str(f)
    if (v !== undefined) (o as unknown as Record<string, unknown>)[key] = parse(f, v)
  }
  num('max-body', 'maxBody', parseSize)
  num('timeout', 'timeout', parseDuration)
  num('idle-timeout', 'idleTimeout', parseDuration)
  num('connect-timeout', 'connectTimeout', parseDuration)
  num('sessions', 'sessions', parseCount)
  num('max-fails', 'maxFails', parseCount)
  num('fail-timeout', 'failTimeout', parseDuration)
  num('health-interval', 'healthInterval', parseDuration)
  num('max-waiting', 'maxWaiting', parseCount)
  num('retry-after', 'retryAfter', parseCount)
  num('dns-interval', 'dnsInterval', parseDuration)
  num('max-header-size', 'maxHeaderSize', parseSize)
  num('ws-max-message', 'wsMaxMessage', parseSize)
  num('ws-idle-timeout', 'wsIdleTimeout', parseDuration)
  if (flags['no-websocket'] === true) o.websocket = false
  if (flags['no-retry'] === true) o.retry = false
  if (flags['no-direct'] === true) o.direct = false
  if (flags['access-log'] === true) o.accessLog = true
  else if (flags['no-access-log'] === true) o.accessLog = false
  else if (o.accessLog === undefined) o.accessLog = true
  if (str('auth') !== undefined) o.auth = str('auth')
  if (str('forwarded-allow-ips') !== undefined) o.forwardedAllowIps = str('forwarded-allow-ips')!.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (flags['trust-request-id'] === true) o.trustRequestId = true
  if (str('server-name') !== undefined) o.serverName = str('server-name')
  if (flags.http2 === true) o.http2 = true
  if (str('log-level') !== undefined) o.logLevel = str('log-level')!
  const certFile = str('tls-cert') ?? cfg.tls?.cert
  const keyFile = str('tls-key') ?? cfg.tls?.key
  if ((certFile === undefined) !== (keyFile === undefined)) fail('--tls-cert and --tls-key go together')
  const clientTlsFiles = certFile !== undefined && keyFile !== undefined ? { cert: certFile, key: keyFile } : null
  if (clientTlsFiles !== null && readTls) o.tls = readClientTls(clientTlsFiles)
  else delete o.tls
  // TLS towards tls:// nodes: flags > environment > config file, per setting
  const upstreamTls: UpstreamTlsFiles = { ...cfg.upstreamTls }
  if (str('upstream-tls-ca') !== undefined) upstreamTls.ca = str('upstream-tls-ca')
  if (str('upstream-tls-cert') !== undefined) upstreamTls.cert = str('upstream-tls-cert')
  if (str('upstream-tls-key') !== undefined) upstreamTls.key = str('upstream-tls-key')
  if (str('upstream-tls-servername') !== undefined) upstreamTls.servername = str('upstream-tls-servername')
  const upstreamTlsFiles = Object.keys(upstreamTls).length === 0 ? null : upstreamTls
  if (upstreamTlsFiles !== null && readTls) o.upstreamTls = readUpstreamTls(upstreamTlsFiles)
  else delete o.upstreamTls
  const listenText = str('listen') ?? cfg.listen ?? '127.0.0.1:8080'
  const hasUpstreams = (o.upstreams?.length ?? 0) > 0 || Object.keys(o.pools ?? {}).length > 0
  if (!hasUpstreams && (o.static?.length ?? 0) === 0) fail('nothing to serve: give --upstream <node> and/or --static <dir> (see ferry front --help)')
  const listen = parseAddress(listenText)
  if (listen.kind === 'tcp' && listen.tls === true) fail(`--listen ${listenText}: tls:// is for the link to app nodes; the front's own HTTPS is --tls-cert/--tls-key with --listen host:port`)
  return { listen, options: o, configFile, upstreamTlsFiles, clientTlsFiles }
}

function removeStaleSocket (path: string): void {
  if (!existsSync(path)) return
  if (lstatSync(path).isSocket()) unlinkSync(path)
}

/**
 * SIGHUP's TLS part: read the upstream TLS files again (or, when the settings no longer
 * name any, go back to Node's root CAs) for new connections to tls:// nodes. Bad files:
 * FERRY_ERR_FRONT_TLS_RELOAD logged, the running settings kept. Returns the files now in force.
 */
function reloadUpstreamTls (ferry: Forwarder, before: UpstreamTlsFiles | null, files: UpstreamTlsFiles | null, log: Logger): UpstreamTlsFiles | null {
  if (files === null && before === null) return null
  try {
    ferry.reloadTls(files === null ? undefined : readUpstreamTls(files))
  } catch (err) {
    log.error({ code: 'FERRY_ERR_FRONT_TLS_RELOAD', err: (err as Error).message, ...files }, 'SIGHUP: upstream TLS files not reloaded: keeping the running settings')
    return before
  }
  log.info({ ...(files ?? {}) }, files === null ? 'upstream TLS reloaded: no files named any more, Node\'s root CAs verify nodes' : 'upstream TLS reloaded: new connections to tls:// nodes use these files')
  return files
}

/**
 * SIGHUP's HTTPS part: read the certificate and key towards clients again and give them to
 * new client connections (open ones keep theirs). Bad files: FERRY_ERR_FRONT_TLS_RELOAD
 * logged, the running certificate kept. HTTPS cannot be switched on or off without a
 * restart: settings that try to are refused the same way. Returns the files now in force.
 */
function reloadHttps (app: ReturnType<typeof createFront>, before: ClientTlsFiles | null, files: ClientTlsFiles | null, log: Logger): ClientTlsFiles | null {
  if (files === null && before === null) return null
  if (before === null) {
    log.error({ code: 'FERRY_ERR_FRONT_TLS_RELOAD', ...files }, 'SIGHUP: HTTPS certificate named, but this front was started without HTTPS: it takes effect at a restart')
    return null
  }
  if (files === null) {
    log.error({ code: 'FERRY_ERR_FRONT_TLS_RELOAD', ...before }, 'SIGHUP: no HTTPS certificate named any more, but HTTPS cannot be turned off without a restart: keeping the running certificate')
    return before
  }
  try {
    reloadClientTls(app, readClientTls(files))
  } catch (err) {
    log.error({ code: 'FERRY_ERR_FRONT_TLS_RELOAD', err: (err as Error).message, ...files }, 'SIGHUP: HTTPS certificate not reloaded: keeping the running one')
    return before
  }
  log.info({ ...files }, 'HTTPS certificate reloaded: new client connections get it')
  return files
}

export async function run (argv: string[]): Promise<number | undefined> {
  const { listen, options, configFile, upstreamTlsFiles, clientTlsFiles } = await resolveOptions(argv)
  const { logLevel, ...frontOptions } = options
  const log = pino({ level: logLevel, base: { pid: process.pid, name: 'ferry-front' } }, logDestination())
  // An exception or rejection nothing handled (a bug, or a --config module's own timers and
  // promises): the front's state is unknown after it, so one fatal line with a code, then
  // exit 1 for the supervisor (instead of Node's bare stack on stderr).
  const fatal = (err: unknown, origin: string): void => exitFatal(log, { err, origin, code: 'FERRY_ERR_FRONT_UNCAUGHT' }, 'uncaught exception: the front ends')
  process.on('uncaughtException', (err, origin) => fatal(err, origin))
  process.on('unhandledRejection', (reason) => fatal(reason, 'unhandledRejection'))
  const app = createFront({ ...frontOptions, logger: log })
  if (listen.kind === 'unix') {
    removeStaleSocket(listen.path)
    await app.listen({ path: listen.path })
  } else {
    await app.listen({ host: listen.host, port: listen.port })
  }
  // Signal handlers first: a SIGHUP or SIGTERM sent as soon as the "listening" line is read
  // must not meet Node's default action (the process ends).
  let tlsFiles = upstreamTlsFiles
  let httpsFiles = clientTlsFiles
  // One SIGHUP at a time: a second one while the config loads waits for the first.
  let hup: Promise<void> = Promise.resolve()
  const onHup = async (): Promise<void> => {
    let files = tlsFiles
    let https = httpsFiles
    let lists: Record<string, string[]> | null = null
    if (configFile === undefined) {
      const reread = [httpsFiles === null ? null : 'HTTPS certificate', tlsFiles === null ? null : 'upstream TLS'].filter((w) => w !== null)
      log.warn(reread.length === 0 ? 'SIGHUP: no --config file to re-read' : `SIGHUP: no --config file to re-read: upstreams unchanged (the ${reread.join(' and ')} files are re-read)`)
    } else {
      try {
        const next = await resolveOptions(argv, process.env, false)
        lists = {}
        if (next.options.upstreams !== undefined) lists.default = next.options.upstreams
        for (const [name, p] of Object.entries(next.options.pools ?? {})) lists[name] = p.upstreams
        files = next.upstreamTlsFiles
        https = next.clientTlsFiles
        if (JSON.stringify(next.options.resolver ?? []) !== JSON.stringify(options.resolver ?? [])) {
          log.warn({ resolver: next.options.resolver ?? [], running: options.resolver ?? [] }, 'SIGHUP: the resolver setting changed: it takes effect at a restart (dns:// and srv:// names still go to the running servers)')
        }
      } catch (err) {
        // the TLS files named at the last good load are still re-read below
        log.error({ err: (err as Error).message }, 'SIGHUP: config not reloaded')
      }
    }
    // TLS first: nodes the new config adds connect with the new settings
    tlsFiles = reloadUpstreamTls(app.ferry, tlsFiles, files, log)
    httpsFiles = reloadHttps(app, httpsFiles, https, log)
    if (lists !== null) {
      app.ferry.reload(lists)
      log.info({ config: configFile }, 'reloaded upstreams')
    }
  }
  process.on('SIGHUP', () => {
    hup = hup.then(onHup).catch((err: unknown) => { log.error({ err }, 'SIGHUP: reload failed') })
  })
  const stopped = new Promise<number>((resolvePromise) => {
    let stopping = false
    const stop = (signal: string): void => {
      if (stopping) return
      stopping = true
      log.info({ signal }, 'stopping')
      app.close().then(() => resolvePromise(0), () => resolvePromise(1))
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  const a = app.server.address()
  const bound: Address = typeof a === 'string' || a === null
    ? { kind: 'unix', path: listen.kind === 'unix' ? listen.path : String(a) }
    : { kind: 'tcp', host: a.address, port: a.port }
  log.info({ addresses: [formatAddress(bound)], upstreams: Object.fromEntries([...app.ferry.pools].map(([k, p]) => [k, p.nodes.map((n) => n.name)])) }, 'listening')
  log.flush() // lines are written in batches: the announcement goes out now
  return await stopped
}
