/**
 * `ferry app --direct N`: N threads that each serve native connections on their own addresses
 * (direct-thread.ts), with the handlers inline on that thread. A front learns the addresses
 * from this node's HELLO (`endpoints`) and sends its requests there: no hop from the main
 * thread to a worker and back, so none of the pool's wake-ups (docs/operations.md).
 *
 * The main thread supervises them, as the pool supervises its workers:
 * - a thread's addresses are derived from the node's listeners — unix:PATH gives PATH.1,
 *   PATH.2 …; tcp://HOST:PORT (and tls://) gives HOST with a port of its own, kept when the
 *   thread is replaced — so a front reconnects to the same endpoint;
 * - harakiri: every thread moves a shared counter each tick; one whose counter stood still
 *   for longer than the longest --timeout (a handler that spins) is terminated and replaced;
 * - an uncaught exception raised by a request's async work fails that request only, as in a
 *   pool worker (direct-thread.ts); after --max-uncaught of them the thread is replaced
 *   gracefully, as at a reload;
 * - a thread that dies (an uncaught exception no request owns, process.exit, past
 *   --max-memory) is replaced at once, then with a growing delay while new ones fail to start;
 * - SIGHUP: one thread at a time is told to shut down (it closes its listeners, sends
 *   GOAWAY and drains) and a fresh thread with fresh modules takes its addresses;
 * - SIGTERM: every thread shuts down gracefully within --graceful-timeout;
 * - --stats: each thread's counters are in shared memory (read at scrape time, kept after the
 *   thread ends), its gauges are asked for at scrape time; both are added to the node's.
 */
import { Worker } from 'node:worker_threads'
import { type Address, FerryError, formatAddress, parseAddress } from '@ferry/protocol'
import type { Logger } from 'pino'
import type { DirectThreadData, FromThread, ThreadGauges, ToThread } from './direct-messages.js'
import { Metrics, MIRROR_CELLS } from './metrics.js'
import { appError } from './errors.js'
import { POOL_EVENTS, type PoolEvent } from './pool.js'
import type { AppServerOptions } from './server.js'

const THREAD_URL = new URL('./direct-thread.js', import.meta.url)
/** Longest wait between attempts to start a thread that keeps failing, ms. */
const MAX_RESTART_DELAY = 5000
/** How long a thread gets to answer a stats request before its last gauges are used, ms. */
const STATS_WAIT = 500

interface DirectSlot {
  /** 1-based. */
  index: number
  worker: Worker | null
  threadId: number
  /** What this slot binds, one per node listener (tcp: port 0 until first bound, then that port). */
  binds: Address[]
  /** The bound addresses, one per node listener ([] until the first thread listened). */
  endpoints: string[]
  beat: Int32Array
  lastBeat: number
  lastChange: number
  running: boolean
  /** The current thread said 'listening' (its exit is then a crash, not a failed start). */
  listened: boolean
  /** Consecutive failed starts (the restart delay grows with them). */
  failures: number
  restartTimer: NodeJS.Timeout | null
  /** The last gauges the thread sent. */
  gauges: ThreadGauges | null
  /** The thread was terminated on purpose (stuck): its exit is not a crash. */
  killed: boolean
  /** Its crash was logged already (an uncaught exception: the 'error' event). */
  crashLogged: boolean
  /** A replacement (reload, --max-uncaught) is under way. */
  replacing: boolean
}

export interface DirectFigures {
  /** One per running thread (the last known gauges of a thread that did not answer in time). */
  threads: ThreadGauges[]
  /** The counters of every thread since the start, those that ended included. */
  metrics: Metrics
  /** The same per mount label (with two or more mounts). */
  mounts: Map<string, Metrics>
  /** The threads' pools' events (504s, refusals, uncaught exceptions …), those that ended included. */
  events: Record<PoolEvent, number>
  live: number
  counters: DirectThreads['counters']
}

export class DirectThreads {
  readonly #o: AppServerOptions
  readonly #log: Logger
  readonly #slots: DirectSlot[] = []
  readonly #tick: number
  readonly #stuckAfter: number
  #watch: NodeJS.Timeout | null = null
  /** When #checkBeats last ran (Date.now()). */
  #lastCheck = 0
  #closing = false
  #statsSeq = 0
  readonly #statsWaiters = new Map<number, { pending: Set<DirectSlot>, done: () => void }>()
  /** Counters of the threads that ended (summed), and the shared counters of each running one. */
  readonly #retired = new Metrics()
  readonly #retiredMounts = new Map<string, Metrics>()
  readonly #retiredEvents = new Float64Array(POOL_EVENTS.length)
  readonly #mirrors = new Map<Worker, { counters: Float64Array, events: Float64Array, labels: string[] }>()
  /** Waiters for each slot's next 'listening' / 'failed' / 'unbound' / exit. */
  readonly #events = new Map<Worker, (m: FromThread | { op: 'exit', code: number }) => void>()
  readonly counters = { started: 0, crashed: 0, stuck: 0, failed: 0, recycled: 0 }

  /** `listeners`: the node's --listen addresses, in order (the threads' are derived from them). */
  constructor (options: AppServerOptions, listeners: Address[], log: Logger) {
    this.#o = options
    this.#log = log
    const timeout = Math.max(options.timeout, ...options.mounts.map((m) => m.timeout ?? 0))
    this.#tick = Math.min(1000, Math.max(50, Math.floor(timeout / 4)))
    this.#stuckAfter = timeout + this.#tick
    for (let index = 1; index <= options.direct; index++) {
      this.#slots.push({
        index,
        worker: null,
        threadId: -1,
        binds: listeners.map((a) => a.kind === 'unix' ? { ...a, path: `${a.path}.${index}` } : { ...a, port: 0 }),
        endpoints: [],
        beat: new Int32Array(new SharedArrayBuffer(4)),
        lastBeat: 0,
        lastChange: 0,
        running: false,
        listened: false,
        failures: 0,
        restartTimer: null,
        gauges: null,
        killed: false,
        crashLogged: false,
        replacing: false
      })
    }
  }

  /** Start every thread; rejects (after ending them) when one fails to start (its error's code). */
  async start (): Promise<void> {
    try {
      await Promise.all(this.#slots.map(async (slot) => {
        const r = await this.#spawn(slot)
        // the thread's own error, code and message as it had them (a listen or TLS failure)
        if (r.op === 'failed') throw new FerryError(r.code, r.message)
        if (r.op === 'exit') throw appError('FERRY_ERR_APP_WORKER_CRASHED', `direct thread ${slot.index} exited with code ${r.code} before listening`)
      }))
    } catch (err) {
      await this.close()
      throw err
    }
    this.#lastCheck = Date.now()
    this.#watch = setInterval(() => this.#checkBeats(), this.#tick)
    this.#watch.unref()
  }

  /** The threads' addresses for connections that reached the node's listener number `i`. */
  endpoints (i: number): string[] {
    const out: string[] = []
    for (const s of this.#slots) if (s.endpoints[i] !== undefined) out.push(s.endpoints[i]!)
    return out
  }

  /** For the "listening" line. */
  describe (): { thread: number, threadId: number, addresses: string[] }[] {
    return this.#slots.map((s) => ({ thread: s.index, threadId: s.threadId, addresses: s.endpoints }))
  }

  get live (): number { let n = 0; for (const s of this.#slots) if (s.running) n++; return n }

  /** Start a thread in `slot`; resolves with its first word: listening, failed, or its exit. */
  #spawn (slot: DirectSlot): Promise<FromThread | { op: 'exit', code: number }> {
    const o = this.#o
    const data: DirectThreadData = {
      options: {
        ...o,
        direct: 0,
        stats: null,
        listen: slot.binds.map((a) => formatAddress(a)),
        threadsMin: 0,
        threadsMax: 0,
        mounts: o.mounts.map((m) => ({ ...m, threadsMin: 0, threadsMax: 0 }))
      },
      index: slot.index,
      beat: slot.beat,
      tick: this.#tick,
      counters: new Float64Array(new SharedArrayBuffer(8 * MIRROR_CELLS * (1 + (o.mounts.length + (o.handler !== null ? 1 : 0))))),
      events: new Float64Array(new SharedArrayBuffer(8 * POOL_EVENTS.length))
    }
    const worker = new Worker(THREAD_URL, {
      workerData: data,
      resourceLimits: o.maxMemory > 0 ? { maxOldGenerationSizeMb: o.maxMemory } : {}
    })
    slot.worker = worker
    slot.killed = false
    slot.crashLogged = false
    slot.running = false
    slot.listened = false
    this.counters.started++
    return new Promise((resolve) => {
      let first = true
      const firstWord = (m: FromThread | { op: 'exit', code: number }): void => {
        if (!first) return
        first = false
        resolve(m)
      }
      worker.on('message', (m: FromThread) => this.#onMessage(slot, worker, data.counters, data.events, m, firstWord))
      worker.on('error', (err) => {
        if (this.#closing || slot.worker !== worker) return
        slot.crashLogged = true
        this.#log.error({ err, direct: slot.index, threadId: slot.threadId, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'direct thread crashed: its connections are closed (the front retries or fails their requests); replacing it')
      })
      worker.once('exit', (code) => {
        this.#fold(worker)
        this.#events.get(worker)?.({ op: 'exit', code })
        this.#events.delete(worker)
        firstWord({ op: 'exit', code })
        this.#onExit(slot, worker, code)
      })
    })
  }

  #onMessage (slot: DirectSlot, worker: Worker, counters: Float64Array, events: Float64Array, m: FromThread, firstWord: (m: FromThread) => void): void {
    switch (m.op) {
      case 'listening':
        this.#mirrors.set(worker, { counters, events, labels: m.mounts })
        if (slot.worker === worker) {
          slot.threadId = m.threadId
          slot.endpoints = m.addresses
          // a tcp thread keeps its port when replaced, so fronts reconnect to the same endpoint
          slot.binds = m.addresses.map((a) => parseAddress(a))
          slot.running = true
          slot.listened = true
          slot.failures = 0
          slot.lastBeat = Atomics.load(slot.beat, 0)
          slot.lastChange = Date.now()
        }
        firstWord(m)
        break
      case 'failed':
        this.counters.failed++
        if (!this.#closing) this.#log.error({ direct: slot.index, code: m.code, err: m.message }, 'direct thread failed to start')
        firstWord(m)
        break
      case 'stats': {
        slot.gauges = m.gauges
        const w = this.#statsWaiters.get(m.seq)
        if (w !== undefined) {
          w.pending.delete(slot)
          if (w.pending.size === 0) w.done()
        }
        break
      }
      case 'crashed':
        if (slot.worker === worker) slot.crashLogged = true
        break
      case 'recycle':
        if (slot.worker !== worker || this.#closing) break
        this.counters.recycled++
        this.#log.info({ direct: slot.index, threadId: slot.threadId, maxUncaught: this.#o.maxUncaught }, 'recycling direct thread (max-uncaught): a fresh one takes its addresses, the old one finishes its requests')
        this.#replace(slot).then((ok) => {
          if (ok) this.#log.info({ direct: slot.index, threadId: slot.threadId, addresses: slot.endpoints }, 'direct thread recycled')
        }, (err: unknown) => this.#log.error({ err, direct: slot.index }, 'recycling the direct thread failed'))
        break
      case 'unbound':
      case 'stopped':
        this.#events.get(worker)?.(m)
        break
    }
  }

  #onExit (slot: DirectSlot, worker: Worker, code: number): void {
    if (slot.worker !== worker) return // an old thread that was draining after a reload
    if (slot.listened && !slot.killed && !slot.crashLogged && !this.#closing) {
      this.#log.error({ direct: slot.index, threadId: slot.threadId, exitCode: code, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'direct thread exited (process.exit): its connections are closed (the front retries or fails their requests); replacing it')
    }
    slot.running = false
    slot.worker = null
    slot.gauges = null
    if (this.#closing) return
    if (slot.listened && !slot.killed) this.counters.crashed++
    if (!slot.listened) slot.failures++
    const delay = slot.failures === 0 ? 0 : Math.min(MAX_RESTART_DELAY, 100 * 2 ** (slot.failures - 1))
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null
      if (this.#closing) return
      this.#spawn(slot).then((r) => {
        if (r.op === 'listening') this.#log.info({ direct: slot.index, threadId: slot.threadId, addresses: slot.endpoints }, 'direct thread replaced')
      })
    }, delay)
    slot.restartTimer.unref()
  }

  /** Harakiri: a thread whose heartbeat stood still past the timeout is terminated (then replaced). */
  #checkBeats (): void {
    const now = Date.now()
    // This check itself came late: the whole process did not run (SIGSTOP, a suspended VM,
    // the host's scheduler), and the threads could not beat either. That time is nobody's
    // fault: move every thread's clock past it instead of calling them stuck.
    const missed = now - this.#lastCheck - this.#tick
    this.#lastCheck = now
    const frozen = missed > this.#tick ? missed : 0
    for (const slot of this.#slots) {
      if (!slot.running || slot.worker === null) continue
      slot.lastChange += frozen
      const b = Atomics.load(slot.beat, 0)
      if (b !== slot.lastBeat) {
        slot.lastBeat = b
        slot.lastChange = now
        continue
      }
      if (now - slot.lastChange <= this.#stuckAfter) continue
      this.counters.stuck++
      slot.killed = true
      this.#log.error({ direct: slot.index, threadId: slot.threadId, ms: now - slot.lastChange, code: 'FERRY_ERR_APP_WORKER_REPLACED' },
        'direct thread is stuck (its event loop has not run for longer than the timeout); terminating and replacing it: its connections close, the front retries or fails their requests')
      slot.running = false
      slot.worker.terminate().catch(() => {})
    }
  }

  /** The next event of `worker` among `ops` (or its exit), or null after `ms`. */
  #next (worker: Worker, ops: string[], ms: number): Promise<string | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#events.delete(worker)
        resolve(null)
      }, ms)
      timer.unref()
      this.#events.set(worker, (m) => {
        if (!ops.includes(m.op) && m.op !== 'exit') return
        clearTimeout(timer)
        this.#events.delete(worker)
        resolve(m.op)
      })
    })
  }

  /** Tell `worker` to shut down; resolves once its addresses are free (or it was ended). */
  async #retire (worker: Worker): Promise<void> {
    const unbound = this.#next(worker, ['unbound'], 2000)
    worker.postMessage({ op: 'shutdown' } satisfies ToThread)
    if (await unbound === null) await worker.terminate()
    // the rest of its drain goes on; past the grace period it is ended
    const grace = setTimeout(() => { worker.terminate().catch(() => {}) }, this.#o.gracefulTimeout + 3000)
    grace.unref()
    const stopped = this.#next(worker, ['stopped'], this.#o.gracefulTimeout + 3000)
    stopped.then(() => {
      clearTimeout(grace)
      worker.terminate().catch(() => {})
    })
  }

  /**
   * SIGHUP: replace the threads one at a time with fresh ones (fresh module caches: the new
   * code). Each old thread closes its listeners and GOAWAYs its connections, the new one binds
   * the same addresses, and the old one finishes its requests. A new thread that fails to load
   * is retried as a crashed one is (with a growing delay); the others keep serving.
   */
  async reload (): Promise<void> {
    for (const slot of this.#slots) {
      if (this.#closing) return
      if (!await this.#replace(slot)) this.#log.error({ direct: slot.index }, 'reload: the new direct thread did not start; retrying')
    }
    this.#log.info({ direct: this.#slots.length }, 'direct threads reloaded')
  }

  /**
   * A fresh thread in `slot`: the old one frees its addresses (closes its listeners, GOAWAY),
   * the new one binds them, the old one finishes its requests meanwhile. True when the new one
   * listens (else it is retried as a crashed one is).
   */
  async #replace (slot: DirectSlot): Promise<boolean> {
    if (slot.replacing) return true
    slot.replacing = true
    try {
      if (slot.restartTimer !== null) {
        clearTimeout(slot.restartTimer)
        slot.restartTimer = null
      }
      const old = slot.worker
      if (old !== null) {
        slot.gauges = null
        slot.worker = null
        slot.running = false
        await this.#retire(old)
      }
      if (this.#closing) return false
      return (await this.#spawn(slot)).op === 'listening'
    } finally {
      slot.replacing = false
    }
  }

  /** SIGTERM: every thread shuts down gracefully; true when all drained within `ms`. */
  async shutdown (ms: number): Promise<boolean> {
    this.#closing = true
    if (this.#watch !== null) clearInterval(this.#watch)
    const workers: Worker[] = []
    for (const s of this.#slots) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer)
      if (s.worker !== null) workers.push(s.worker)
    }
    const results = await Promise.all(workers.map(async (w) => {
      const stopped = this.#next(w, ['stopped'], ms + 3000)
      w.postMessage({ op: 'shutdown' } satisfies ToThread)
      const r = await stopped
      await w.terminate()
      return r === 'stopped'
    }))
    return results.every(Boolean)
  }

  /** End every thread now. */
  async close (): Promise<void> {
    this.#closing = true
    if (this.#watch !== null) clearInterval(this.#watch)
    const ends: Promise<unknown>[] = []
    for (const s of this.#slots) {
      if (s.restartTimer !== null) clearTimeout(s.restartTimer)
      if (s.worker !== null) ends.push(s.worker.terminate())
      s.running = false
    }
    await Promise.all(ends)
  }

  /** Every running thread's figures, asked for now (a thread that does not answer in time: its last). */
  async figures (): Promise<DirectFigures> {
    const seq = ++this.#statsSeq
    const pending = new Set<DirectSlot>()
    for (const s of this.#slots) if (s.running && s.worker !== null) pending.add(s)
    if (pending.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, STATS_WAIT)
        function done (): void { clearTimeout(timer); resolve() }
        this.#statsWaiters.set(seq, { pending, done })
        for (const s of pending) s.worker!.postMessage({ op: 'stats', seq } satisfies ToThread)
      })
      this.#statsWaiters.delete(seq)
    }
    const threads: ThreadGauges[] = []
    for (const s of this.#slots) if (s.running && s.gauges !== null) threads.push(s.gauges)
    const metrics = new Metrics()
    metrics.add(this.#retired)
    const mounts = new Map<string, Metrics>()
    for (const [label, r] of this.#retiredMounts) {
      const m = new Metrics()
      m.add(r)
      mounts.set(label, m)
    }
    for (const { counters, labels } of this.#mirrors.values()) addMirrors(metrics, mounts, counters, labels)
    const events = {} as Record<PoolEvent, number>
    POOL_EVENTS.forEach((k, i) => {
      let n = this.#retiredEvents[i]!
      for (const m of this.#mirrors.values()) n += m.events[i]!
      events[k] = n
    })
    return { threads, metrics, mounts, events, live: this.live, counters: this.counters }
  }

  /** A thread ended: its counters (final now) join the retired ones. */
  #fold (worker: Worker): void {
    const m = this.#mirrors.get(worker)
    if (m === undefined) return
    this.#mirrors.delete(worker)
    addMirrors(this.#retired, this.#retiredMounts, m.counters, m.labels)
    for (let i = 0; i < POOL_EVENTS.length; i++) this.#retiredEvents[i]! += m.events[i]!
  }
}

/**
 * Add a thread's shared counters into `into` (the server's) and `mounts` (per mount label,
 * with two or more mounts).
 */
function addMirrors (into: Metrics, mounts: Map<string, Metrics>, counters: Float64Array, labels: string[]): void {
  into.addMirror(counters.subarray(0, MIRROR_CELLS))
  if (labels.length < 2) return
  labels.forEach((label, i) => {
    let m = mounts.get(label)
    if (m === undefined) mounts.set(label, m = new Metrics())
    m.addMirror(counters.subarray((i + 1) * MIRROR_CELLS, (i + 2) * MIRROR_CELLS))
  })
}
