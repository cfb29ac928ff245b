/**
 * A named pool of upstream nodes: the node set (which can change without a restart: reload,
 * DNS), the balancer's state, health checks, and a bounded queue of requests waiting while
 * no node is connected yet (start-up, reconnect).
 */
import { type FerryError, parseNodeAddress } from '@ferry/protocol'
import { pick } from './balancer.js'
import { frontError } from './errors.js'
import { type NodeEvents, type NodeOptions, UpstreamNode } from './node.js'
import { defaultUpstreamTls } from './upstream-tls.js'

export interface PoolOptions extends NodeOptions {
  /** Active health check interval, ms (0 = off). */
  healthInterval: number
  /** Most requests waiting for a node to connect; past it: 503. */
  maxWaiting: number
}

/** A request waiting for a node (implemented by the exchange). */
export interface Waiter {
  /** A node became usable: try again. */
  retry (): void
  /** Give up with this error. */
  abandon (err: FerryError): void
  /** Wait deadline (Date.now clock). */
  waitUntil: number
}

export type PoolLog = NodeEvents['log']

export class UpstreamPool implements NodeEvents {
  readonly name: string
  nodes: UpstreamNode[] = []
  readonly options: PoolOptions
  #waiters: Waiter[] = []
  #health: NodeJS.Timeout | null = null
  #waitTimer: NodeJS.Timeout | null = null
  #log: PoolLog
  #closed = false

  constructor (name: string, upstreams: readonly string[], options: PoolOptions, log: PoolLog) {
    this.name = name
    this.options = options
    this.#log = log
    this.setNodes(upstreams)
    if (options.healthInterval > 0) {
      this.#health = setInterval(() => this.check(), options.healthInterval)
      this.#health.unref()
    }
  }

  /** Pick a node for a request (power of two choices, least outstanding). */
  pick (exclude: UpstreamNode | null = null): UpstreamNode | null {
    return pick(this.nodes, Date.now(), exclude)
  }

  /**
   * No node is usable now. Returns true when the request should wait (a connect is under
   * way, or was started now for a node that is down but not ejected).
   */
  shouldWait (exclude: UpstreamNode | null): boolean {
    let wait = false
    const now = Date.now()
    for (const n of this.nodes) {
      if (n === exclude || n.removed || n.codec !== 'native') continue
      if (n.ejectedUntil !== 0 && now < n.ejectedUntil && !n.soleNode) continue
      if (n.connecting === 0) n.connectNow()
      if (n.pending) wait = true
    }
    return wait
  }

  /** Queue a request until a node is up; false when the queue is full. */
  wait (w: Waiter): boolean {
    if (this.#waiters.length >= this.options.maxWaiting) return false
    this.#waiters.push(w)
    if (this.#waitTimer === null) {
      this.#waitTimer = setInterval(() => this.#expireWaiters(), 50)
      this.#waitTimer.unref()
    }
    return true
  }

  #expireWaiters (): void {
    const now = Date.now()
    const keep: Waiter[] = []
    for (const w of this.#waiters) {
      if (now >= w.waitUntil) w.abandon(frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', `pool ${this.name}: no node connected within ${this.options.connectTimeout} ms`))
      else keep.push(w)
    }
    this.#waiters = keep
    if (keep.length === 0 && this.#waitTimer !== null) {
      clearInterval(this.#waitTimer)
      this.#waitTimer = null
    }
  }

  #flushWaiters (): void {
    if (this.#waiters.length === 0) return
    const list = this.#waiters
    this.#waiters = []
    for (const w of list) w.retry()
  }

  // NodeEvents
  nodeUp (_node: UpstreamNode): void {
    this.#flushWaiters()
  }

  connectFailed (_node: UpstreamNode, err: FerryError): void {
    if (this.#waiters.length === 0) return
    for (const n of this.nodes) if (n.pending) return
    const list = this.#waiters
    this.#waiters = []
    for (const w of list) w.abandon(err)
  }

  log (level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string): void {
    this.#log(level, { pool: this.name, ...obj }, msg)
  }

  /**
   * Replace the node set: nodes still listed are kept as they are, new ones connect,
   * removed ones drain (their in-flight requests finish; then their connections close).
   */
  setNodes (upstreams: readonly string[]): { added: string[], removed: string[] } {
    if (this.#closed) return { added: [], removed: [] }
    const wanted = new Map<string, ReturnType<typeof parseNodeAddress>>()
    for (const u of upstreams) {
      const a = parseNodeAddress(u)
      // a tls:// node added by a reload to a front started without any: Node's root CAs,
      // as at start (the --upstream-tls-* files are read at start only)
      if (a.address.kind === 'tcp' && a.address.tls === true && this.options.tls === null) this.options.tls = defaultUpstreamTls()
      const node = new UpstreamNode(a, this.options, this)
      wanted.set(node.name, a)
    }
    const added: string[] = []
    const removed: string[] = []
    const next: UpstreamNode[] = []
    for (const n of this.nodes) {
      if (wanted.has(n.name)) {
        next.push(n)
        wanted.delete(n.name)
      } else {
        n.drain()
        removed.push(n.name)
      }
    }
    for (const a of wanted.values()) {
      const n = new UpstreamNode(a, this.options, this)
      next.push(n)
      added.push(n.name)
    }
    this.nodes = next
    const sole = next.length === 1
    for (const n of next) n.soleNode = sole
    for (const n of next) if (added.includes(n.name)) n.start()
    if (added.length > 0 || removed.length > 0) this.log('info', { added, removed, nodes: next.map((n) => n.name) }, 'upstream nodes changed')
    return { added, removed }
  }

  check (): void {
    for (const n of this.nodes) n.check()
  }

  /** Figures for logs and tests. */
  stats (): Array<{ node: string, outstanding: number, served: number, usable: boolean, fails: number }> {
    const now = Date.now()
    return this.nodes.map((n) => ({ node: n.name, outstanding: n.outstanding, served: n.served, usable: n.usable(now), fails: n.fails }))
  }

  close (): void {
    this.#closed = true
    if (this.#health !== null) clearInterval(this.#health)
    if (this.#waitTimer !== null) clearInterval(this.#waitTimer)
    this.#health = null
    this.#waitTimer = null
    const err = frontError('FERRY_ERR_FRONT_NO_HEALTHY_NODE', 'front is closing')
    const list = this.#waiters
    this.#waiters = []
    for (const w of list) w.abandon(err)
    for (const n of this.nodes) n.destroy()
  }
}
