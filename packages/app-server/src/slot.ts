/**
 * A slot: one thread running one long-lived loop task (worker.ts, or loop.ts inline on the
 * main thread when `threads.max === 0`), reached through its own port. This file starts a
 * slot's thread, gives a failed start its error code back, counts slots by state, and picks
 * the slot a request goes to (a pure balancer over the pool's slots, as piscina's is). The
 * pool owns the set of slots and every decision about their lifecycle.
 */
import { MessageChannel } from 'node:worker_threads'
import { FerryError } from '@ferry/protocol'
import { Piscina } from 'piscina'
import { type Call, unbegun } from './call.js'
import { APP_SERVER_ERRORS, type AppErrorCode } from './errors.js'
import { inlinePortPair } from './inline-port.js'
import { attributeMicrotasks, WorkerLoop } from './loop.js'
import type { Port } from './messages.js'
import { loadStack } from './middleware.js'
import type { PoolOptions } from './pool-options.js'
import { installLightResponse } from './response.js'

/**
 * How inline loops (--threads 0) run on this thread. attributeInlineUncaught turns
 * attribution on, as in a pool worker — on a --direct thread (direct-thread.ts) and on the
 * main thread of `ferry app` (the CLI) — and says what happens when a loop reaches
 * --max-uncaught: a --direct thread is replaced, the process drains and exits (recycling a
 * loop on the same thread would keep whatever state the errors left behind). Without it
 * (an embedder's own process), Node's own handling applies and nothing is attributed.
 */
export const inlineThread: { attribute: boolean, onMaxUncaught: (() => void) | null } = { attribute: false, onMaxUncaught: null }

/**
 * Uncaught exceptions and unhandled rejections on a thread whose pools run handlers inline (a
 * --direct thread; the main thread of a node with --threads 0), as in a pool worker: one
 * raised by a request's async work fails that request (500 FERRY_ERR_APP_UNCAUGHT, logged
 * with its request id) and the thread goes on; when a pool counts --max-uncaught of them,
 * `onMax` runs (once); one that belongs to no running request goes to `onUnowned`, which
 * must end the thread or the process. Call before the pools start (their loops read
 * `inlineThread.attribute` when they are made); once per thread.
 */
export function attributeInlineUncaught (onMax: () => void, onUnowned: (err: unknown, origin: string) => void): void {
  inlineThread.attribute = true
  let asked = false
  inlineThread.onMaxUncaught = () => {
    if (asked) return
    asked = true
    onMax()
  }
  const onError = (err: unknown, origin: string): void => {
    if (!WorkerLoop.uncaught(err, origin)) onUnowned(err, origin)
  }
  process.on('uncaughtException', (err, origin) => onError(err, origin))
  process.on('unhandledRejection', (reason) => onError(reason, 'unhandledRejection'))
  attributeMicrotasks()
}

export interface Slot {
  id: number
  port: Port
  abort: AbortController
  ready: boolean
  dead: boolean
  retiring: boolean
  threadId: number
  inflight: number
  /** Open WebSockets on this thread (not in inflight: they do not use up its concurrency). */
  wsOpen: number
  /** The calls assigned to this slot, oldest first: an intrusive list (Call.prevOnSlot/nextOnSlot). */
  firstCall: Call | null
  lastCall: Call | null
  /** In the outbox's dirty list (ops waiting for the next flush). */
  dirty: boolean
  /** Calls on this slot that already survived one thread's death (at most one at a time). */
  suspects: number
  served: number
  maxServed: number
  /** Uncaught exceptions its loop attributed to a request (and survived). */
  uncaught: number
  out: unknown[]
  transfer: ArrayBuffer[]
  seq: number
  /** Requests sent to this slot. */
  sent: number
  /**
   * Shared with the loop: [0] requests it has started; on a pool worker, [1] the time its
   * batches kept it busy and [2] its event loop's active time (all of its work), µs, both
   * wrapping at 2^32 (loop.ts #flush; sampleCost and sampleActive read them).
   */
  started: Int32Array
  /** performance.now() when a message from this slot last arrived, and when its inflight last rose from 0. */
  lastHeard: number
  busySince: number
  /** The cost sample's baseline: started[1] (busy µs) and started[0] when last sampled. */
  loadBusy: number
  loadStarted: number
  /** The utilization sample's baseline: started[2] (active µs) and when (performance.now()). */
  loadActive: number
  loadAt: number
  pingSeq: number
  pingSentAt: number
  idleSince: number
}

/** The piscina pool the slots' loop tasks run in; null when handlers run on the main thread. */
export function createPiscina (options: PoolOptions): Piscina | null {
  if (options.threadsMax <= 0) return null
  const piscina = new Piscina({
    filename: new URL('./worker.js', import.meta.url).href,
    minThreads: 0,
    // room for replacements while a recycled or stuck worker is still shutting down
    maxThreads: options.threadsMax * 2 + 1,
    idleTimeout: 1000,
    concurrentTasksPerWorker: 1,
    atomics: 'disabled',
    resourceLimits: options.maxMemory > 0 ? { maxOldGenerationSizeMb: options.maxMemory } : {}
  })
  piscina.on('error', (err: unknown) => options.log.error({ err }, 'piscina error'))
  return piscina
}

/**
 * Start one slot's thread (a piscina task, or an inline loop when piscina is null). The task
 * settles when the loop ends: resolved when it stopped, rejected when the thread died.
 */
export function startSlot (o: PoolOptions, piscina: Piscina | null, id: number): { slot: Slot, task: Promise<unknown> } {
  const abort = new AbortController()
  const jitter = o.maxRequestsJitter > 0 ? Math.floor(Math.random() * (o.maxRequestsJitter + 1)) : 0
  const started = new Int32Array(new SharedArrayBuffer(piscina !== null ? 12 : 4))
  let port: Port
  let task: Promise<unknown>
  if (piscina !== null) {
    const ch = new MessageChannel()
    port = ch.port1 as unknown as Port
    task = piscina.run({ port: ch.port2, started, handlerUrl: o.handlerUrl, middleware: o.middleware, logLevel: o.logLevel, logStackInterval: o.logStackInterval, generation: o.generation, wsMaxMessage: o.wsMaxMessage, maxUncaught: o.maxUncaught }, {
      transferList: [ch.port2],
      signal: abort.signal
    })
  } else {
    const [main, worker] = inlinePortPair()
    port = main
    task = (async () => {
      installLightResponse()
      const handler = await loadStack(o.handlerUrl, o.middleware, o.generation)
      const loop = new WorkerLoop(worker, handler, o.inlineLog ?? o.log, started, inlineThread.attribute && o.maxUncaught > 0, o.wsMaxMessage, o.logStackInterval)
      abort.signal.addEventListener('abort', () => worker.close())
      await Promise.race([loop.stopped, new Promise((resolve) => abort.signal.addEventListener('abort', resolve))])
    })()
  }
  const slot: Slot = {
    id, port, abort, ready: false, dead: false, retiring: false, threadId: -1,
    inflight: 0, wsOpen: 0, firstCall: null, lastCall: null, dirty: false, suspects: 0, served: 0, maxServed: o.maxRequests > 0 ? o.maxRequests + jitter : 0, uncaught: 0,
    out: [], transfer: [], seq: 0, sent: 0, started, lastHeard: 0, busySince: 0, loadBusy: 0, loadStarted: 0, loadActive: 0, loadAt: 0,
    pingSeq: 0, pingSentAt: 0, idleSince: Date.now()
  }
  return { slot, task }
}

/**
 * A thread that failed to start (usually: the handler failed to load) rejects through
 * piscina with a plain Error: give it its code back.
 */
export function codedError (err: unknown): FerryError {
  const message = String((err as Error)?.message ?? err)
  for (const code of Object.keys(APP_SERVER_ERRORS) as AppErrorCode[]) {
    if (message.startsWith(APP_SERVER_ERRORS[code].message)) return new FerryError(code, message, { cause: err, statusCode: 500 })
  }
  return new FerryError('FERRY_ERR_APP_HANDLER_LOAD', `${APP_SERVER_ERRORS.FERRY_ERR_APP_HANDLER_LOAD.message}: ${message}`, { cause: err, statusCode: 500 })
}

/**
 * How much work (µs of a thread's time, from its measured cost per request) a request may
 * find queued ahead of it on a thread that is awake, rather than wake a sleeping one.
 */
export const PACK_BUDGET_US = 500

/**
 * ms a thread with requests in flight may go without a word back before it counts as busy
 * (in a long synchronous handler, or waiting on slow I/O) and new requests go past it.
 */
export const PACK_STALL_MS = 2

/**
 * Where a request goes. A thread counts as stalled when it has requests in flight and no word
 * back for PACK_STALL_MS (a long synchronous handler, or slow I/O): new requests go to the
 * others while any is not. Among those, with `room` > 0 (packRoom: the pool knows what a
 * request costs, and it is light), the least-loaded of the first `active` threads in the
 * pool's order (sampleActive: as many as the measured load needs) with fewer than `room`
 * requests not yet begun — so light requests keep few threads awake instead of waking them
 * all (each wake-up of a sleeping thread costs more CPU than a light request; see
 * docs/operations.md, "Which thread runs a request"); otherwise the least-loaded. A suspect (a
 * request re-run after its thread died) goes to the least-loaded slot running no other.
 */
export function pickSlot (slots: Set<Slot>, concurrency: number, suspect: boolean, room = 0, active = 1): Slot | null {
  let best: Slot | null = null
  let packed: Slot | null = null
  let stalled: Slot | null = null
  let now = -1
  let i = 0
  for (const s of slots) {
    if (!s.ready || s.dead || s.retiring) continue
    const inActiveSet = i++ < active
    if (s.inflight >= concurrency) continue
    if (suspect && s.suspects > 0) continue
    if (s.inflight > 0) {
      if (now < 0) now = performance.now()
      if (now - Math.max(s.lastHeard, s.busySince) > PACK_STALL_MS) {
        if (stalled === null || s.inflight < stalled.inflight) stalled = s
        continue
      }
    }
    if (room > 0 && !suspect && inActiveSet && unbegun(s.sent, Atomics.load(s.started, 0)) < room) {
      if (packed === null || s.inflight < packed.inflight) packed = s
    }
    if (best === null || s.inflight < best.inflight) best = s
  }
  return packed ?? best ?? stalled
}

/** Requests a load sample needs from a thread to count. */
const LOAD_MIN_REQUESTS = 16

/**
 * The event-loop utilization (active time ÷ time) the threads that take packed requests are
 * kept at: the pool packs onto as many threads as its measured utilization ÷ this.
 */
export const PACK_UTILIZATION = 0.5

/** ms a utilization sample spans at least. */
const LOAD_MIN_WINDOW_MS = 100

/**
 * How many threads take packed requests: the pool's threads' event-loop utilization in all
 * (sampled from each worker's active time since the last sample, at least
 * LOAD_MIN_WINDOW_MS apart) ÷ PACK_UTILIZATION, rounded up, at least 1 — the previous count
 * when no window has passed. This counts everything a thread does (the work a handler does
 * after awaiting I/O too, which the cost estimate misses): a thread kept busy that way
 * brings the next one in.
 */
export function sampleActive (slots: Set<Slot>, previous: number, now: number): number {
  let used = 0
  let sampled = false
  let live = 0
  for (const s of slots) {
    if (!s.ready || s.dead || s.started.length < 3) continue
    if (!s.retiring) live++
    const ms = now - s.loadAt
    if (ms < LOAD_MIN_WINDOW_MS) continue
    const a = Atomics.load(s.started, 2)
    used += Math.min(1, Math.max(0, ((a - s.loadActive) | 0) / (ms * 1000)))
    s.loadActive = a
    s.loadAt = now
    sampled = true
  }
  if (!sampled) return previous
  return Math.max(1, Math.min(Math.max(live, 1), Math.ceil(used / PACK_UTILIZATION)))
}

/**
 * What a request costs the pool's threads, µs of event-loop time each, updated from the
 * threads' shared counters (busy time, requests started) since the last sample: the
 * previous estimate blended half and half with this window's, or the previous one unchanged
 * when no thread started LOAD_MIN_REQUESTS. Infinity while unknown. The busy time is from a
 * batch's arrival to the end of that event-loop turn: the handlers' synchronous work and
 * whatever settles in the same turn, not work a handler does later, after awaiting I/O (a
 * thread that such work keeps busy shows in its utilization: sampleActive).
 */
export function sampleCost (slots: Set<Slot>, previous: number): number {
  let busy = 0
  let requests = 0
  for (const s of slots) {
    if (!s.ready || s.dead || s.started.length < 2) continue
    const started = Atomics.load(s.started, 0)
    const n = (started - s.loadStarted) | 0
    if (n < LOAD_MIN_REQUESTS) continue
    const a = Atomics.load(s.started, 1)
    busy += (a - s.loadBusy) | 0
    requests += n
    s.loadBusy = a
    s.loadStarted = started
  }
  if (requests === 0) return previous
  const cost = Math.max(busy, 0) / requests
  return previous === Infinity ? cost : (previous + cost) / 2
}

/** `room` for pickSlot: how many unbegun requests of this cost fit in PACK_BUDGET_US. */
export function packRoom (costUs: number): number {
  return costUs === Infinity ? 0 : Math.floor(PACK_BUDGET_US / Math.max(costUs, 1))
}

/** Slots that take new requests or will once loaded (not dead, not retiring). */
export function liveCount (slots: Set<Slot>): number {
  let n = 0
  for (const s of slots) if (!s.dead && !s.retiring) n++
  return n
}

/** Slots whose loop has loaded the handler. */
export function readyCount (slots: Set<Slot>): number {
  let n = 0
  for (const s of slots) if (s.ready && !s.dead) n++
  return n
}
