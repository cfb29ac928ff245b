/**
 * Node sets that DNS names, re-resolved on an interval (as Kubernetes headless services and
 * Consul publish a service's instances):
 *
 * - `dns://name:port`: the name's A and AAAA records; each address becomes `tcp://addr:port`.
 * - `srv://name`: the name's SRV records (RFC 2782); each target's A/AAAA addresses become
 *   `tcp://addr:<the record's port>`. Only the records with the lowest priority value whose
 *   targets resolve to at least one address are used (higher values are backups); weights are
 *   not used (the balancer, least outstanding requests, already sends a slower node less).
 *   A target "." (the service is decidedly not available) gives no node.
 *
 * `uwsgi+` forms give `uwsgi+tcp://` nodes. New nodes get traffic, vanished ones drain. A failed
 * lookup keeps the last known set (a DNS hiccup must not empty the pool), and logs a warn line.
 * The servers asked are `resolver` when given, else the system's; `localhost` and IP literals
 * never go to a DNS server (getaddrinfo answers them, from /etc/hosts). TTLs are not used:
 * every interval asks again.
 */
import { lookup, Resolver } from 'node:dns/promises'
import { isIP } from 'node:net'
import { type DnsName, parseDnsUpstream } from './options.js'
import type { PoolLog, UpstreamPool } from './pool.js'

export interface DnsOptions {
  /** Re-resolve every N ms. */
  interval: number
  /** DNS servers (Resolver#setServers form); empty: the system's. */
  resolver: readonly string[]
}

/** Answers that say the name has no such records (not a failure to ask). */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA'])

function codeOf (err: unknown): string {
  return (err as { code?: string }).code ?? 'EUNKNOWN'
}

function lookupError (host: string, reasons: unknown[]): Error {
  const codes = reasons.map(codeOf)
  const code = codes.find((c) => !NO_RECORDS.has(c)) ?? codes[0] ?? 'ENODATA'
  return Object.assign(new Error(`${host}: ${reasons.map((r) => (r as Error).message).join('; ')}`), { code })
}

function nodeOf (codec: DnsName['codec'], addr: string, port: number): string {
  const hostPort = addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`
  return codec === 'uwsgi' ? `uwsgi+tcp://${hostPort}` : `tcp://${hostPort}`
}

export class DnsWatcher {
  readonly pool: UpstreamPool
  #fixed: string[]
  #names: DnsName[]
  /** The last node list each name resolved to. */
  #known = new Map<number, string[]>()
  /** Per srv:// name: the last addresses of each target in use (kept through a failed lookup). */
  #targets = new Map<number, Map<string, string[]>>()
  #timer: NodeJS.Timeout
  #log: PoolLog
  #closed = false
  #running = false
  #resolver: Resolver
  /** With servers of our own, names go to them only (no system fallback). */
  #ownServers: boolean

  constructor (pool: UpstreamPool, fixed: string[], names: string[], options: DnsOptions, log: PoolLog) {
    this.pool = pool
    this.#fixed = fixed
    this.#names = names.map(parseDnsUpstream)
    this.#log = log
    // A server that does not answer within min(2 s, interval), asked twice (c-ares doubles
    // the wait on the retry), is a failed lookup: a refresh never lasts much past the interval.
    this.#resolver = new Resolver({ timeout: Math.min(2000, Math.max(100, options.interval)), tries: 2 })
    this.#ownServers = options.resolver.length > 0
    if (this.#ownServers) this.#resolver.setServers(options.resolver)
    this.#timer = setInterval(() => { this.refresh() }, options.interval)
    this.#timer.unref()
    pool.setNodes(fixed)
    this.refresh()
  }

  /** A host's A and AAAA addresses. Throws with `code` ENOTFOUND/ENODATA when it has none. */
  async #addresses (host: string): Promise<string[]> {
    if (host === 'localhost' || isIP(host) !== 0) {
      const all = await lookup(host, { all: true })
      return all.map((a) => a.address)
    }
    const [v4, v6] = await Promise.allSettled([this.#resolver.resolve4(host), this.#resolver.resolve6(host)])
    const out: string[] = []
    if (v4.status === 'fulfilled') out.push(...v4.value)
    if (v6.status === 'fulfilled') out.push(...v6.value)
    if (out.length > 0) return out
    const reasons = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [r.reason] : []))
    if (this.#ownServers) throw lookupError(host, reasons)
    // Not in DNS proper (e.g. /etc/hosts only): fall back to the system resolver.
    const all = await lookup(host, { all: true })
    return all.map((a) => a.address)
  }

  /** The nodes of one SRV name: the lowest priority value with an address (RFC 2782). */
  async #srv (n: DnsName, i: number): Promise<string[]> {
    const prev = this.#targets.get(i) ?? new Map<string, string[]>()
    const next = new Map<string, string[]>()
    const records = (await this.#resolver.resolveSrv(n.host)).filter((r) => r.name !== '' && r.name !== '.')
    if (records.length === 0) { // only ".": decidedly not available
      this.#targets.delete(i)
      return []
    }
    const priorities = [...new Set(records.map((r) => r.priority))].sort((a, b) => a - b)
    const reasons: unknown[] = []
    for (const priority of priorities) {
      const group = records.filter((r) => r.priority === priority)
      const found = await Promise.all(group.map(async (r) => {
        const target = r.name.toLowerCase()
        try {
          const addrs = await this.#addresses(target)
          next.set(target, addrs)
          return addrs.map((a) => nodeOf(n.codec, a, r.port))
        } catch (err) {
          reasons.push(err)
          const last = prev.get(target)
          // No such name now: the target is gone. Could not ask: its last known addresses.
          if (!NO_RECORDS.has(codeOf(err)) && last !== undefined && !this.#closed) {
            next.set(target, last)
            this.#log('warn', { pool: this.pool.name, name: n.host, target, err: (err as Error).message }, 'dns lookup of an SRV target failed; keeping its last known addresses')
            return last.map((a) => nodeOf(n.codec, a, r.port))
          }
          return []
        }
      }))
      const nodes = found.flat()
      if (nodes.length > 0) {
        this.#targets.set(i, next)
        return nodes
      }
    }
    throw lookupError(`${n.host}: no SRV target has an address`, reasons)
  }

  async refresh (): Promise<void> {
    if (this.#running || this.#closed) return // a slow lookup: the next tick asks again
    this.#running = true
    try {
      await Promise.all(this.#names.map(async (n, i) => {
        try {
          const nodes = n.kind === 'srv'
            ? await this.#srv(n, i)
            : (await this.#addresses(n.host)).map((a) => nodeOf(n.codec, a, n.port))
          this.#known.set(i, [...new Set(nodes)].sort())
        } catch (err) {
          if (this.#closed) return // close() cancelled the lookup
          this.#log('warn', { pool: this.pool.name, name: n.host, type: n.kind === 'srv' ? 'SRV' : 'A/AAAA', err: (err as Error).message }, 'dns lookup failed; keeping the last known nodes')
        }
      }))
    } finally {
      this.#running = false
    }
    if (this.#closed) return
    const all = [...this.#fixed]
    for (const list of this.#known.values()) all.push(...list)
    this.pool.setNodes([...new Set(all)])
  }

  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
    this.#resolver.cancel()
  }
}
