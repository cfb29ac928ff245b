/**
 * Options of the ferry plugin and of createFront, with their defaults. Names follow what
 * operators know from nginx (max_fails, fail_timeout, proxy_read_timeout,
 * client_max_body_size) and gunicorn (forwarded_allow_ips).
 */
import { isIPv4, isIPv6 } from 'node:net'
import { DEFAULT_WS_MAX_MESSAGE, parseNodeAddress } from '@ferry/protocol'
import { frontError } from './errors.js'
import { defaultUpstreamTls, type UpstreamTls, type UpstreamTlsOptions, upstreamTls } from './upstream-tls.js'

/** A named pool of upstream nodes; node options left out take the top-level values. */
export interface PoolConfig {
  upstreams: string[]
  sessions?: number
  connectTimeout?: number
  maxFails?: number
  failTimeout?: number
  healthInterval?: number
  maxWaiting?: number
  auth?: string
  /** Send requests to the thread endpoints a node announces (`ferry app --direct`); default true. */
  direct?: boolean
}

/** Requests whose path starts with `prefix` go to `pool`. */
export interface RouteConfig {
  prefix: string
  pool: string
  /** Response head timeout for this route, ms. */
  timeout?: number
  idleTimeout?: number
}

export interface StaticConfig {
  dir: string
  /** URL prefix, default '/'. */
  prefix?: string
  /** Cache-Control max-age, ms (default 0). */
  maxAge?: number
  immutable?: boolean
}

export interface FerryOptions {
  /**
   * Nodes of the 'default' pool: unix:/p, tcp://h:p, tls://h:p, uwsgi+unix:/p, uwsgi+tcp://h:p,
   * uwsgi+tls://h:p, dns://name:port, srv://name (and uwsgi+dns://, uwsgi+srv://).
   */
  upstreams?: string[]
  pools?: Record<string, PoolConfig>
  routes?: RouteConfig[]
  /** Forward every request no route or static file answers to this pool (default 'default' when it exists; false = off). */
  catchAll?: string | false
  static?: StaticConfig[]
  /** Largest request body, bytes (0 = no limit). nginx client_max_body_size. */
  maxBody?: number
  /** Response head timeout, ms (default 60000). */
  timeout?: number
  /** Longest pause once bytes flow, ms (default 60000). */
  idleTimeout?: number
  /** Connect + HELLO timeout, ms (default 5000). */
  connectTimeout?: number
  /** Persistent connections per native node (default 2). */
  sessions?: number
  /** nginx max_fails (default 1). */
  maxFails?: number
  /** nginx fail_timeout, ms (default 10000). */
  failTimeout?: number
  /** PING interval, ms (default 5000; 0 = off). */
  healthInterval?: number
  /** Requests waiting for a node to connect, per pool (default 1024). */
  maxWaiting?: number
  /**
   * Send requests to the thread endpoints nodes announce in HELLO (`ferry app --direct`), each
   * on a connection of its own (default true); false: every request to the node's own address.
   */
  direct?: boolean
  /** Retry a failed request once on another node when safe (default true). nginx proxy_next_upstream. */
  retry?: boolean
  /** Retry-After on 503 answers, seconds (default 1). */
  retryAfter?: number
  /** One log line per forwarded request (default false in the plugin). */
  accessLog?: boolean
  /** Token sent in HELLO. */
  auth?: string
  /**
   * TLS towards tls:// and uwsgi+tls:// nodes (every pool): the CA that signs their
   * certificates (default Node's root CAs), a client certificate + key to present, the name
   * to check (default the node's host). Given with no tls:// node: FERRY_ERR_FRONT_CONFIG.
   */
  upstreamTls?: UpstreamTlsOptions
  /** Peers whose X-Forwarded-* headers are believed ('*' = all). gunicorn forwarded_allow_ips. */
  forwardedAllowIps?: string[]
  /** SERVER_NAME for the app (default: the local address of the connection). */
  serverName?: string
  /** Re-resolve dns:// and srv:// nodes every N ms (default 5000). */
  dnsInterval?: number
  /**
   * DNS servers asked for dns:// and srv:// names, `ip` or `ip:port` (`[v6]:port`), in order
   * (nginx resolver). Default: the system's (/etc/resolv.conf).
   */
  resolver?: string[]
  /** Accept WebSocket upgrades on forwarded routes (default true). */
  websocket?: boolean
  /** Largest WebSocket message either way, bytes (default 16 MiB); past it: close 1009. */
  wsMaxMessage?: number
  /** Close a WebSocket with no frame either way for this long, ms (default 0 = never). */
  wsIdleTimeout?: number
}

export interface ResolvedRoute {
  prefix: string
  pool: string
  timeout: number
  idleTimeout: number
}

export const DEFAULTS = {
  timeout: 60000,
  idleTimeout: 60000,
  connectTimeout: 5000,
  sessions: 2,
  maxFails: 1,
  failTimeout: 10000,
  healthInterval: 5000,
  maxWaiting: 1024,
  retryAfter: 1,
  dnsInterval: 5000,
  maxBackoff: 2000,
  wsMaxMessage: DEFAULT_WS_MAX_MESSAGE
} as const

function flag (name: string, v: boolean | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw frontError('FERRY_ERR_FRONT_CONFIG', `${name} must be true or false, got ${JSON.stringify(v)}`)
  return v
}

function positive (name: string, v: number | undefined, fallback: number, min = 0): number {
  if (v === undefined) return fallback
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) {
    throw frontError('FERRY_ERR_FRONT_CONFIG', `${name} must be a number >= ${min}, got ${JSON.stringify(v)}`)
  }
  return v
}

/** Check one upstream string (dns:// and srv:// names are resolved later, by DnsWatcher). */
export function checkUpstream (u: string): void {
  if (typeof u !== 'string') throw frontError('FERRY_ERR_FRONT_CONFIG', `upstream must be a string, got ${JSON.stringify(u)}`)
  if (isDnsUpstream(u)) {
    parseDnsUpstream(u)
    return
  }
  try {
    parseNodeAddress(u)
  } catch (err) {
    throw frontError('FERRY_ERR_FRONT_CONFIG', `upstream ${JSON.stringify(u)}: ${(err as Error).message}`, { cause: err })
  }
}

const DNS_UPSTREAM = /^(uwsgi\+)?(dns|srv):\/\//

/** dns://, srv://, uwsgi+dns://, uwsgi+srv:// — a node set that DNS names. */
export function isDnsUpstream (u: string): boolean {
  return DNS_UPSTREAM.test(u)
}

/** A dns:// name (A/AAAA records, one port) or a srv:// name (SRV records, their ports). */
export type DnsName =
  | { kind: 'a', codec: 'native' | 'uwsgi', host: string, port: number }
  | { kind: 'srv', codec: 'native' | 'uwsgi', host: string }

/** A DNS name as ferry takes it: letters, digits, '-', '_' in dot-separated labels of 1-63. */
function isDnsName (name: string): boolean {
  if (name.length === 0 || name.length > 254 || !/^[A-Za-z0-9._-]+$/.test(name)) return false
  const labels = name.endsWith('.') ? name.slice(0, -1).split('.') : name.split('.')
  return labels.every((l) => l.length > 0 && l.length <= 63)
}

/**
 * `dns://name:port`, `srv://name` and their `uwsgi+` forms. Throws FERRY_ERR_FRONT_CONFIG
 * on another form (srv:// with a port, dns:// without one, an empty or malformed name).
 */
export function parseDnsUpstream (u: string): DnsName {
  const m = DNS_UPSTREAM.exec(u)
  const codec = m?.[1] === undefined ? 'native' : 'uwsgi'
  const rest = m === null ? u : u.slice(m[0].length).replace(/\/$/, '')
  if (m?.[2] === 'srv') {
    if (isDnsName(rest)) return { kind: 'srv', codec, host: rest }
    const why = /:\d*$/.test(rest) ? ' (no port: the SRV records carry it)' : ''
    throw frontError('FERRY_ERR_FRONT_CONFIG', `upstream ${JSON.stringify(u)}: expected srv://name, e.g. srv://_ferry._tcp.app.internal${why}`)
  }
  const hp = /^(.*):(\d{1,5})$/.exec(rest)
  if (m === null || hp === null || !isDnsName(hp[1]!) || Number(hp[2]) > 65535 || Number(hp[2]) === 0) throw frontError('FERRY_ERR_FRONT_CONFIG', `upstream ${JSON.stringify(u)}: expected dns://name:port`)
  return { kind: 'a', codec, host: hp[1]!, port: Number(hp[2]) }
}

/**
 * One `--resolver` value: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` or a bare IPv6 address,
 * returned in the form Resolver#setServers takes. Names are refused (resolving the
 * resolver's own name would need a resolver). Throws FERRY_ERR_FRONT_CONFIG.
 */
export function parseResolver (v: string): string {
  const bad = (why: string): never => { throw frontError('FERRY_ERR_FRONT_CONFIG', `resolver ${JSON.stringify(v)}: ${why}`) }
  if (typeof v !== 'string') bad('expected an IP address with an optional port, e.g. 10.0.0.2 or 10.0.0.2:53')
  const s = v.trim()
  let host: string
  let port: string | undefined
  const v6 = /^\[([^\]]*)\](?::(\d*))?$/.exec(s)
  if (v6 !== null) [, host = '', port] = v6
  else if (isIPv6(s)) host = s
  else {
    const i = s.lastIndexOf(':')
    host = i < 0 ? s : s.slice(0, i)
    port = i < 0 ? undefined : s.slice(i + 1)
  }
  const ip = isIPv6(host) ? 6 : v6 === null && isIPv4(host) ? 4 : 0
  if (ip === 0) bad('expected an IP address with an optional port, e.g. 10.0.0.2, 10.0.0.2:53, [fd00::2]:53 (not a name)')
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) === 0 || Number(port) > 65535)) bad(`bad port ${JSON.stringify(port)} (1-65535)`)
  const p = port === undefined ? 53 : Number(port)
  return ip === 6 ? `[${host}]:${p}` : `${host}:${p}`
}

export interface Normalized {
  pools: Record<string, Required<Omit<PoolConfig, 'auth'>> & { auth: string | undefined }>
  routes: ResolvedRoute[]
  catchAll: string | false
  static: Array<Required<StaticConfig>>
  maxBody: number
  timeout: number
  idleTimeout: number
  retry: boolean
  retryAfter: number
  accessLog: boolean
  forwardedAllowIps: Set<string>
  serverName: string
  dnsInterval: number
  /** DNS servers for dns:// and srv:// names (setServers form); empty: the system's. */
  resolver: string[]
  websocket: boolean
  wsMaxMessage: number
  wsIdleTimeout: number
  /** Shared by every pool's tls:// nodes; null when no node is tls://. */
  upstreamTls: UpstreamTls | null
}

function isTlsUpstream (u: string): boolean {
  return /^(uwsgi\+|native\+)?tls:\/\//.test(u.trim())
}

function resolvers (list: string[] | undefined): string[] {
  if (list === undefined) return []
  if (!Array.isArray(list)) throw frontError('FERRY_ERR_FRONT_CONFIG', `resolver must be a list of addresses, got ${JSON.stringify(list)}`)
  return list.map(parseResolver)
}

export function normalizeOptions (o: FerryOptions): Normalized {
  const timeout = positive('timeout', o.timeout, DEFAULTS.timeout, 1)
  const idleTimeout = positive('idleTimeout', o.idleTimeout, DEFAULTS.idleTimeout, 1)
  const poolDefaults = {
    sessions: positive('sessions', o.sessions, DEFAULTS.sessions, 1),
    connectTimeout: positive('connectTimeout', o.connectTimeout, DEFAULTS.connectTimeout, 1),
    maxFails: positive('maxFails', o.maxFails, DEFAULTS.maxFails, 1),
    failTimeout: positive('failTimeout', o.failTimeout, DEFAULTS.failTimeout, 1),
    healthInterval: positive('healthInterval', o.healthInterval, DEFAULTS.healthInterval, 0),
    maxWaiting: positive('maxWaiting', o.maxWaiting, DEFAULTS.maxWaiting, 0),
    direct: flag('direct', o.direct, true)
  }
  const pools: Normalized['pools'] = {}
  const input: Record<string, PoolConfig> = { ...(o.pools ?? {}) }
  if (o.upstreams !== undefined && o.upstreams.length > 0) {
    if (input.default !== undefined) throw frontError('FERRY_ERR_FRONT_CONFIG', 'both upstreams and pools.default are set')
    input.default = { upstreams: o.upstreams }
  }
  for (const [name, p] of Object.entries(input)) {
    if (!Array.isArray(p.upstreams)) throw frontError('FERRY_ERR_FRONT_CONFIG', `pool ${name}: upstreams must be a list`)
    for (const u of p.upstreams) checkUpstream(u)
    pools[name] = {
      upstreams: [...p.upstreams],
      sessions: positive(`pools.${name}.sessions`, p.sessions, poolDefaults.sessions, 1),
      connectTimeout: positive(`pools.${name}.connectTimeout`, p.connectTimeout, poolDefaults.connectTimeout, 1),
      maxFails: positive(`pools.${name}.maxFails`, p.maxFails, poolDefaults.maxFails, 1),
      failTimeout: positive(`pools.${name}.failTimeout`, p.failTimeout, poolDefaults.failTimeout, 1),
      healthInterval: positive(`pools.${name}.healthInterval`, p.healthInterval, poolDefaults.healthInterval, 0),
      maxWaiting: positive(`pools.${name}.maxWaiting`, p.maxWaiting, poolDefaults.maxWaiting, 0),
      direct: flag(`pools.${name}.direct`, p.direct, poolDefaults.direct),
      auth: p.auth ?? o.auth
    }
  }
  const anyTls = Object.values(pools).some((p) => p.upstreams.some(isTlsUpstream))
  if (o.upstreamTls !== undefined && !anyTls) {
    throw frontError('FERRY_ERR_FRONT_CONFIG', 'upstream TLS options (--upstream-tls-*) given but no upstream is tls://host:port or uwsgi+tls://host:port (they would protect nothing)')
  }
  const tls = anyTls ? (upstreamTls(o.upstreamTls) ?? defaultUpstreamTls()) : null
  const resolver = resolvers(o.resolver)
  if (resolver.length > 0 && !Object.values(pools).some((p) => p.upstreams.some(isDnsUpstream))) {
    throw frontError('FERRY_ERR_FRONT_CONFIG', 'resolver (--resolver) given but no upstream is dns://name:port or srv://name (it would resolve nothing; tcp:// host names are looked up by the system when connecting)')
  }
  const routes: ResolvedRoute[] = (o.routes ?? []).map((r, i) => {
    if (typeof r.prefix !== 'string' || !r.prefix.startsWith('/')) throw frontError('FERRY_ERR_FRONT_CONFIG', `routes[${i}].prefix must start with /`)
    if (pools[r.pool] === undefined) throw frontError('FERRY_ERR_FRONT_UNKNOWN_POOL', `routes[${i}] names pool ${JSON.stringify(r.pool)}`)
    return {
      prefix: r.prefix.length > 1 && r.prefix.endsWith('/') ? r.prefix.slice(0, -1) : r.prefix,
      pool: r.pool,
      timeout: positive(`routes[${i}].timeout`, r.timeout, timeout, 1),
      idleTimeout: positive(`routes[${i}].idleTimeout`, r.idleTimeout, idleTimeout, 1)
    }
  })
  let catchAll: string | false
  if (o.catchAll === false) catchAll = false
  else if (typeof o.catchAll === 'string') {
    if (pools[o.catchAll] === undefined) throw frontError('FERRY_ERR_FRONT_UNKNOWN_POOL', `catchAll names pool ${JSON.stringify(o.catchAll)}`)
    catchAll = o.catchAll
  } else catchAll = pools.default !== undefined ? 'default' : false
  const statics = (o.static ?? []).map((s, i) => {
    if (typeof s.dir !== 'string' || s.dir === '') throw frontError('FERRY_ERR_FRONT_CONFIG', `static[${i}].dir must be a folder`)
    let prefix = s.prefix ?? '/'
    if (!prefix.startsWith('/')) prefix = `/${prefix}`
    return { dir: s.dir, prefix, maxAge: positive(`static[${i}].maxAge`, s.maxAge, 0), immutable: s.immutable === true }
  })
  return {
    pools,
    routes,
    catchAll,
    static: statics,
    maxBody: positive('maxBody', o.maxBody, 0),
    timeout,
    idleTimeout,
    retry: o.retry !== false,
    retryAfter: positive('retryAfter', o.retryAfter, DEFAULTS.retryAfter),
    accessLog: o.accessLog === true,
    forwardedAllowIps: new Set(o.forwardedAllowIps ?? []),
    serverName: o.serverName ?? '',
    dnsInterval: positive('dnsInterval', o.dnsInterval, DEFAULTS.dnsInterval, 10),
    resolver,
    websocket: o.websocket !== false,
    wsMaxMessage: positive('wsMaxMessage', o.wsMaxMessage, DEFAULTS.wsMaxMessage, 1),
    wsIdleTimeout: positive('wsIdleTimeout', o.wsIdleTimeout, 0),
    upstreamTls: tls
  }
}
