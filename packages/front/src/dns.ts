/**
 * `dns://name:port` upstreams: the name's A and AAAA records, re-resolved on an interval (as
 * Kubernetes headless services and Consul publish a service's instances). Each address
 * becomes a node `tcp://addr:port`; new addresses get traffic, vanished ones drain.
 * A failed lookup keeps the last known set (a DNS hiccup must not empty the pool).
 */
import { Resolver } from 'node:dns/promises'
import { lookup } from 'node:dns/promises'
import { parseDnsUpstream } from './options.js'
import type { PoolLog, UpstreamPool } from './pool.js'

export class DnsWatcher {
  readonly pool: UpstreamPool
  #fixed: string[]
  #names: Array<ReturnType<typeof parseDnsUpstream>>
  #known = new Map<number, string[]>()
  #timer: NodeJS.Timeout
  #log: PoolLog
  #closed = false
  #resolver = new Resolver()

  constructor (pool: UpstreamPool, fixed: string[], names: string[], interval: number, log: PoolLog) {
    this.pool = pool
    this.#fixed = fixed
    this.#names = names.map(parseDnsUpstream)
    this.#log = log
    this.#timer = setInterval(() => { this.refresh() }, interval)
    this.#timer.unref()
    pool.setNodes(fixed)
    this.refresh()
  }

  async #resolve (host: string): Promise<string[]> {
    if (host === 'localhost' || /^[\d.]+$/.test(host) || host.includes(':')) {
      const all = await lookup(host, { all: true })
      return all.map((a) => a.address)
    }
    const [v4, v6] = await Promise.allSettled([this.#resolver.resolve4(host), this.#resolver.resolve6(host)])
    const out: string[] = []
    if (v4.status === 'fulfilled') out.push(...v4.value)
    if (v6.status === 'fulfilled') out.push(...v6.value)
    if (out.length === 0) {
      // Not in DNS proper (e.g. /etc/hosts only): fall back to the system resolver.
      const all = await lookup(host, { all: true })
      return all.map((a) => a.address)
    }
    return out
  }

  async refresh (): Promise<void> {
    await Promise.all(this.#names.map(async (n, i) => {
      try {
        const addrs = (await this.#resolve(n.host)).sort()
        this.#known.set(i, addrs.map((a) => {
          const hostPort = a.includes(':') ? `[${a}]:${n.port}` : `${a}:${n.port}`
          return n.codec === 'uwsgi' ? `uwsgi+tcp://${hostPort}` : `tcp://${hostPort}`
        }))
      } catch (err) {
        this.#log('warn', { pool: this.pool.name, name: n.host, err: (err as Error).message }, 'dns lookup failed; keeping the last known nodes')
      }
    }))
    if (this.#closed) return
    const all = [...this.#fixed]
    for (const list of this.#known.values()) all.push(...list)
    this.pool.setNodes([...new Set(all)])
  }

  close (): void {
    this.#closed = true
    clearInterval(this.#timer)
  }
}
