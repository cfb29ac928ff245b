/**
 * The dispatcher: a piscina pool in which every thread runs one long-lived loop task
 * (worker.ts), fed through its own MessagePort with one batched message per event-loop turn.
 * It keeps per-worker in-flight counts (least-loaded worker first), a bounded queue, the
 * per-request timeout with harakiri (a worker that does not answer a heartbeat after a timeout
 * is terminated and replaced), recycling after max-requests or max-uncaught, crash recovery, and growing /
 * shrinking between min and max threads. `threads.max === 0` runs the loop on the main thread.
 */
import { MessageChannel } from 'node:worker_threads'
import { FerryError, type RequestHead } from '@ferry/protocol'
import { Piscina } from 'piscina'
import type { Logger } from 'pino'
import { BodyBuffers } from './body-buffers.js'
import { APP_SERVER_ERRORS, type AppErrorCode, appError } from './errors.js'
import { IdTable } from './id-table.js'
import { inlinePortPair } from './inline-port.js'
import { WorkerLoop } from './loop.js'
import { Op, type Port } from './messages.js'
import { loadStack } from './middleware.js'
import { type MiddlewareSpec, stripPrefix } from './mounts.js'
import { installLightResponse } from './response.js'

/** The pool settings a user gives (flags, config, per mount); the server's options extend them. */
export interface PoolSettings {
  threadsMin: number
  threadsMax: number
  /** Requests one thread runs at once (async handlers overlap their I/O). */
  concurrency: number
  maxQueue: number
  /** ms until the response head; 0 = none. */
  timeout: number
  maxRequests: number
  maxRequestsJitter: number
  /**
   * Uncaught exceptions a thread survives (each fails only its request) before it is
   * recycled as max-requests recycles; 0 = the first one ends the thread (Node's default).
   */
  maxUncaught: number
  /** MiB of old-generation heap per worker; 0 = Node's default. */
  maxMemory: number
  /** ms a thread above the minimum may sit idle before it is retired. */
  idleTimeout: number
  logLevel: string
  /** ms: the same error logs its stack once per interval per thread; 0 = every time. */
  logStackInterval: number
  /** Largest WebSocket message a handler receives, bytes. */
  wsMaxMessage: number
}

export interface PoolOptions extends PoolSettings {
  handlerUrl: string
  /** The mount prefix ('' for the root mount): stripped from the path the handler sees. */
  prefix: string
  /** Middleware around the handler, outermost first ([] = the handler alone). */
  middleware: MiddlewareSpec[]
  generation: number
  log: Logger
}

/** The main-thread side of one request: the connection it came from answers through this. */
export interface Exchange {
  readonly head: RequestHead
  onHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void
  /** A response chunk; the exchange calls pool.credit(call, n) once the bytes are written on. */
  onChunk (chunk: Uint8Array): void
  onEnd (): void
  /** The request failed: answer err.statusCode if no head went out yet, else reset. */
  onFail (err: FerryError): void
  /** The handler took n request-body bytes: return that credit upstream. */
  onConsumed (n: number): void
  /** A WebSocket upgrade this node may accept (context.upgradeWebSocket works for it). */
  readonly upgrade?: boolean
}

export class Call {
  readonly rid: number
  readonly ex: Exchange
  /** When the timeout clock started (see #sweep). */
  start: number
  slot: Slot | null = null
  /** Position of this request among the requests sent to its slot (1-based). */
  seqOnSlot = 0
  pendingBody: ArrayBuffer[] = []
  bodyEnded = false
  headReceived = false
  done = false
  /**
   * Threads that died while running this request (it had begun there). The first time it is
   * re-dispatched as a suspect; the second time it fails (see #orphan).
   */
  strikes = 0
  /** Request-body credit already returned upstream, and the part of it this run reported. */
  consumedReported = 0
  consumedRun = 0
  /** Body bytes handed to the thread, kept (up to KEEP_BODY) so the request can run again; null past it. */
  kept: ArrayBuffer[] | null = []
  keptBytes = 0
  /**
   * The slot's list of its calls runs through the calls themselves (not a Set: see IdTable):
   * `onSlot` is set while this call is in `slot`'s list.
   */
  onSlot = false
  /** Answered 101: a long-lived WebSocket, no longer counted against the slot's concurrency. */
  ws = false
  prevOnSlot: Call | null = null
  nextOnSlot: Call | null = null
  constructor (rid: number, ex: Exchange, start: number) {
    this.rid = rid
    this.ex = ex
    this.start = start
  }
}

interface Slot {
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
  /** In the pool's dirty list (ops waiting for the next flush). */
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
  /** Shared with the loop: requests it has started. */
  started: Int32Array
  pingSeq: number
  pingSentAt: number
  idleSince: number
}

let nextRid = 1

/** Methods that may run twice with the effect of once (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** Request-body bytes per call kept after they went to a thread, for a re-run if it dies. */
const KEEP_BODY = 64 * 1024

function codedError (err: unknown): FerryError {
  const message = String((err as Error)?.message ?? err)
  for (const code of Object.keys(APP_SERVER_ERRORS) as AppErrorCode[]) {
    if (message.startsWith(APP_SERVER_ERRORS[code].message)) return new FerryError(code, message, { cause: err, statusCode: 500 })
  }
  return new FerryError('FERRY_ERR_APP_HANDLER_LOAD', `${APP_SERVER_ERRORS.FERRY_ERR_APP_HANDLER_LOAD.message}: ${message}`, { cause: err, statusCode: 500 })
}

export class Pool {
  #o: PoolOptions
  #piscina: Piscina | null = null
  #slots = new Set<Slot>()
  #calls = new IdTable<Call>()
  #queue: Call[] = []
  /** Suspects: requests that were running on a thread that died, waiting for their one re-run. */
  #retry: Call[] = []
  /** Slots with ops waiting for the next flush (not a Set: it would churn; Slot.dirty marks them). */
  #dirty: Slot[] = []
  #flushScheduled = false
  readonly #bodyBuffers: BodyBuffers
  #sweepTimer: NodeJS.Timeout
  #slotSeq = 0
  #closing = false
  #drainWaiters: (() => void)[] = []
  #readyWaiters: { resolve: () => void, reject: (e: Error) => void }[] = []
  #startError: Error | null = null
  /** Counters for stats. */
  readonly counters = { crashed: 0, replaced: 0, recycled: 0, timedOut: 0, rejected: 0, redispatched: 0, uncaught: 0 }

  constructor (options: PoolOptions) {
    this.#o = options
    this.#bodyBuffers = new BodyBuffers(options.threadsMax > 0)
    if (options.threadsMax > 0) {
      this.#piscina = new Piscina({
        filename: new URL('./worker.js', import.meta.url).href,
        minThreads: 0,
        // room for replacements while a recycled or stuck worker is still shutting down
        maxThreads: options.threadsMax * 2 + 1,
        idleTimeout: 1000,
        concurrentTasksPerWorker: 1,
        atomics: 'disabled',
        resourceLimits: options.maxMemory > 0 ? { maxOldGenerationSizeMb: options.maxMemory } : {}
      })
      this.#piscina.on('error', (err: unknown) => options.log.error({ err }, 'piscina error'))
    }
    const every = Math.max(10, Math.min(250, options.timeout > 0 ? options.timeout / 4 : 250))
    this.#sweepTimer = setInterval(() => this.#sweep(), every)
    this.#sweepTimer.unref()
    const n = Math.max(1, options.threadsMin)
    for (let i = 0; i < n; i++) this.#startSlot()
  }

  get threads (): number { let n = 0; for (const s of this.#slots) if (!s.dead) n++; return n }
  get busyThreads (): number { let n = 0; for (const s of this.#slots) if (!s.dead && s.inflight > 0) n++; return n }
  get inflight (): number { return this.#calls.size - this.#queue.length - this.#retry.length }
  get queued (): number { return this.#queue.length + this.#retry.length }
  get threadIds (): number[] { return [...this.#slots].filter((s) => !s.dead && s.ready).map((s) => s.threadId) }

  /** Resolves once the minimum number of threads have loaded the handler; rejects if loading fails. */
  ready (): Promise<void> {
    if (this.#startError !== null) return Promise.reject(this.#startError)
    if (this.#readyCount() >= Math.max(1, this.#o.threadsMin)) return Promise.resolve()
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }))
  }

  #readyCount (): number { let n = 0; for (const s of this.#slots) if (s.ready && !s.dead) n++; return n }

  // ── slots ──────────────────────────────────────────────────────────────────

  #liveSlots (): number {
    let n = 0
    for (const s of this.#slots) if (!s.dead && !s.retiring) n++
    return n
  }

  #startSlot (): void {
    const o = this.#o
    const abort = new AbortController()
    const jitter = o.maxRequestsJitter > 0 ? Math.floor(Math.random() * (o.maxRequestsJitter + 1)) : 0
    const started = new Int32Array(new SharedArrayBuffer(4))
    let port: Port
    let task: Promise<unknown>
    if (this.#piscina !== null) {
      const ch = new MessageChannel()
      port = ch.port1 as unknown as Port
      task = this.#piscina.run({ port: ch.port2, started, handlerUrl: o.handlerUrl, middleware: o.middleware, logLevel: o.logLevel, logStackInterval: o.logStackInterval, generation: o.generation, wsMaxMessage: o.wsMaxMessage, maxUncaught: o.maxUncaught }, {
        transferList: [ch.port2],
        signal: abort.signal
      })
    } else {
      const [main, worker] = inlinePortPair()
      port = main
      task = (async () => {
        installLightResponse()
        const handler = await loadStack(o.handlerUrl, o.middleware, o.generation)
        const loop = new WorkerLoop(worker, handler, o.log.child({ component: 'inline' }), started, false, o.wsMaxMessage, o.logStackInterval)
        abort.signal.addEventListener('abort', () => worker.close())
        await Promise.race([loop.stopped, new Promise((resolve) => abort.signal.addEventListener('abort', resolve))])
      })()
    }
    const slot: Slot = {
      id: ++this.#slotSeq, port, abort, ready: false, dead: false, retiring: false, threadId: -1,
      inflight: 0, wsOpen: 0, firstCall: null, lastCall: null, dirty: false, suspects: 0, served: 0, maxServed: o.maxRequests > 0 ? o.maxRequests + jitter : 0, uncaught: 0,
      out: [], transfer: [], seq: 0, sent: 0, started, pingSeq: 0, pingSentAt: 0, idleSince: Date.now()
    }
    this.#slots.add(slot)
    port.on('message', (msg) => this.#onMessage(slot, msg))
    task.then(() => this.#onSlotEnd(slot, null), (err: unknown) => this.#onSlotEnd(slot, err))
  }

  #onSlotEnd (slot: Slot, err: unknown): void {
    const wasDead = slot.dead
    slot.dead = true
    this.#slots.delete(slot)
    this.#undirty(slot)
    slot.port.close()
    if (wasDead) return // we killed it and handled its calls already
    if (!slot.ready && err !== null && !this.#closing) {
      // The handler failed to load (or the thread died before it was ready). The error came
      // through piscina as a plain Error: give it its code back.
      err = codedError(err)
      this.#o.log.error({ err, code: (err as FerryError)?.code }, 'worker failed to start')
      if (this.#readyCount() === 0 && this.#readyWaiters.length > 0) {
        this.#startError = err as Error
        for (const w of this.#readyWaiters.splice(0)) w.reject(err as Error)
        return
      }
      if (this.#readyCount() === 0) return
    }
    if (err !== null && !slot.retiring) {
      this.counters.crashed++
      this.#o.log.error({ err, threadId: slot.threadId, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'worker crashed; replacing it')
    }
    this.#orphan(slot, 'FERRY_ERR_APP_WORKER_CRASHED')
    this.#refill()
  }

  /**
   * Fail or re-dispatch the calls of a dead slot (crashed, or terminated as stuck). With many
   * requests per thread the main thread cannot tell which one killed it, so:
   *  - a request that produced a response head, or whose body bytes handed to the thread
   *    passed KEEP_BODY (no copy was kept), fails;
   *  - a request the thread had not begun (the shared `started` counter) is re-dispatched,
   *    whatever its method, ahead of the queue;
   *  - a thread that crashed with one begun request: that request is the cause and fails;
   *  - a begun request with an idempotent method is re-dispatched once, as a suspect: suspects
   *    run at most one per thread, so if one is the poison it kills one more thread and only
   *    itself fails (second strike); a poison request costs at most two threads;
   *  - any other begun request (POST, PATCH… that may have had effects) fails.
   * Calls already answered (a timed-out request got its 504 before the kill) are not here.
   */
  #orphan (slot: Slot, code: 'FERRY_ERR_APP_WORKER_CRASHED' | 'FERRY_ERR_APP_WORKER_REPLACED'): void {
    const calls: Call[] = []
    for (let c = slot.firstCall; c !== null; c = c.nextOnSlot) calls.push(c)
    const started = Atomics.load(slot.started, 0)
    for (const c of calls) {
      c.onSlot = false
      c.prevOnSlot = null
      c.nextOnSlot = null
    }
    slot.firstCall = null
    slot.lastCall = null
    slot.inflight = 0
    slot.wsOpen = 0
    slot.suspects = 0
    const redo: Call[] = []
    let suspects = 0
    let failed = 0
    // A thread that crashed while running a single request: that one is the cause.
    let begunCount = 0
    for (const c of calls) if (!c.done && c.seqOnSlot <= started) begunCount++
    const sole = code === 'FERRY_ERR_APP_WORKER_CRASHED' && begunCount === 1
    for (const c of calls) {
      if (c.done) continue
      c.slot = null
      const begun = c.seqOnSlot <= started
      if (c.headReceived || c.kept === null || (begun && sole)) {
        failed++
        this.#fail(c, appError(code, `thread ${slot.threadId}`))
      } else if (!begun) {
        this.#rewind(c)
        redo.push(c)
      } else if (c.strikes === 0 && IDEMPOTENT.has(c.ex.head.method)) {
        c.strikes = 1
        this.#rewind(c)
        suspects++
        this.#retry.push(c)
      } else {
        failed++
        this.#fail(c, appError(code, `thread ${slot.threadId}`))
      }
    }
    // never started: they go first, ahead of the queue
    for (let i = redo.length - 1; i >= 0; i--) this.#queue.unshift(redo[i]!)
    this.counters.redispatched += redo.length + suspects
    if (calls.length > 0) {
      this.#o.log.warn({ threadId: slot.threadId, code, notStarted: redo.length, suspects, failed }, 'requests of a dead thread: not started re-dispatched, begun idempotent re-run once as suspects, the rest failed')
    }
  }

  /** Ready a call for another run: the kept body goes out again before any later bytes. */
  #rewind (c: Call): void {
    c.consumedRun = 0
    if (c.kept !== null && c.kept.length > 0) c.pendingBody = [...c.kept, ...c.pendingBody]
    c.kept = []
    c.keptBytes = 0
  }

  /** Keep the pool at its minimum size; start more if work is waiting. */
  #refill (): void {
    if (this.#closing) return
    while (this.#liveSlots() < Math.max(1, this.#o.threadsMin)) this.#startSlot()
    if (this.#queue.length + this.#retry.length > 0 && this.#liveSlots() < Math.max(1, this.#o.threadsMax)) {
      let starting = 0
      for (const s of this.#slots) if (!s.ready && !s.dead) starting++
      if (starting === 0) this.#startSlot()
    }
    this.#pump()
  }

  #kill (slot: Slot, code: 'FERRY_ERR_APP_WORKER_CRASHED' | 'FERRY_ERR_APP_WORKER_REPLACED'): void {
    if (slot.dead) return
    slot.dead = true
    this.#slots.delete(slot)
    this.#undirty(slot)
    slot.abort.abort(appError(code))
    slot.port.close()
    this.#orphan(slot, code)
    this.#refill()
  }

  // ── dispatch ───────────────────────────────────────────────────────────────

  /** Accept a request; returns the call, or the error to answer with (queue full, closing). */
  submit (ex: Exchange): Call | FerryError {
    if (this.#closing) return appError('FERRY_ERR_APP_SHUTTING_DOWN')
    const call = new Call(nextRid++, ex, Date.now())
    const slot = this.#pick()
    if (slot !== null) {
      this.#calls.set(call.rid, call)
      this.#assign(call, slot)
      return call
    }
    if (this.#queue.length >= this.#o.maxQueue) {
      this.counters.rejected++
      return appError('FERRY_ERR_APP_QUEUE_FULL', `${this.#queue.length} waiting`)
    }
    this.#calls.set(call.rid, call)
    this.#queue.push(call)
    this.#refill()
    return call
  }

  /** The least-loaded ready slot with room; for a suspect, one running no other suspect. */
  #pick (suspect = false): Slot | null {
    let best: Slot | null = null
    for (const s of this.#slots) {
      if (!s.ready || s.dead || s.retiring || s.inflight >= this.#o.concurrency) continue
      if (suspect && s.suspects > 0) continue
      if (best === null || s.inflight < best.inflight) best = s
    }
    return best
  }

  #assign (call: Call, slot: Slot): void {
    call.slot = slot
    slot.inflight++
    linkCall(slot, call)
    if (call.strikes > 0) slot.suspects++
    slot.served++
    if (slot.maxServed > 0 && slot.served >= slot.maxServed) this.#retire(slot, 'max-requests')
    const h = call.ex.head
    const prefix = this.#o.prefix
    const req = call.ex.upgrade === true ? Op.REQ_WS : Op.REQ
    if (prefix === '') this.#send(slot, [req, call.rid, h.method, h.scheme, h.authority, h.path, h.headers, h.remoteAddress, h.remotePort, h.requestId, h.bodyLength])
    else this.#send(slot, [req, call.rid, h.method, h.scheme, h.authority, stripPrefix(h.path, prefix), h.headers, h.remoteAddress, h.remotePort, h.requestId, h.bodyLength, prefix, h.path])
    call.seqOnSlot = ++slot.sent
    for (const ab of call.pendingBody) this.#forward(call, slot, ab)
    call.pendingBody.length = 0
    if (call.bodyEnded) this.#send(slot, [Op.BODY_END, call.rid])
  }

  #pump (): void {
    while (this.#retry.length > 0) {
      if (this.#retry[0]!.done) {
        this.#retry.shift()
        continue
      }
      const slot = this.#pick(true)
      if (slot === null) break
      this.#assign(this.#retry.shift()!, slot)
    }
    while (this.#queue.length > 0) {
      const slot = this.#pick()
      if (slot === null) return
      const call = this.#queue.shift()!
      if (call.done) continue
      this.#assign(call, slot)
    }
    if (this.#closing) this.#checkDrained()
  }

  /** Recycle a thread: no new requests, the ones it has finish, a replacement starts now. */
  #retire (slot: Slot, why: 'max-requests' | 'max-uncaught'): void {
    if (slot.retiring) return
    slot.retiring = true
    this.counters.recycled++
    this.#o.log.info({ threadId: slot.threadId, served: slot.served, uncaught: slot.uncaught }, `recycling worker (${why})`)
    this.#refill()
    this.#maybeRetired(slot)
  }

  #maybeRetired (slot: Slot): void {
    if (!slot.retiring || slot.inflight > 0 || slot.wsOpen > 0 || slot.dead) return
    // End the thread itself (abort terminates it): the replacement starts with fresh memory.
    slot.dead = true
    this.#slots.delete(slot)
    this.#undirty(slot)
    slot.abort.abort()
    slot.port.close()
  }

  /** Request body bytes from the connection (a copy the pool may transfer). */
  body (call: Call, chunk: Uint8Array): void {
    if (call.done) return
    const ab = this.#bodyBuffers.take(chunk.byteLength)
    new Uint8Array(ab).set(chunk)
    if (call.slot === null) call.pendingBody.push(ab)
    else this.#forward(call, call.slot, ab)
  }

  /** Body bytes to the thread: cloned and kept while under KEEP_BODY, else transferred. */
  #forward (call: Call, slot: Slot, ab: ArrayBuffer): void {
    if (call.kept !== null && call.keptBytes + ab.byteLength <= KEEP_BODY) {
      call.kept.push(ab)
      call.keptBytes += ab.byteLength
      this.#send(slot, [Op.BODY, call.rid, ab])
    } else {
      this.#dropKept(call)
      this.#send(slot, [Op.BODY, call.rid, ab], ab)
    }
  }

  /** The request will not run again: its kept body copies can be reused. */
  #dropKept (call: Call): void {
    if (call.kept !== null && call.kept.length > 0) this.#bodyBuffers.release(call.kept)
    call.kept = null
  }

  bodyEnd (call: Call): void {
    if (call.done) return
    call.bodyEnded = true
    if (call.slot !== null) this.#send(call.slot, [Op.BODY_END, call.rid])
  }

  /** The client went away: stop the handler (its signal aborts) and forget the call. */
  cancel (call: Call): void {
    if (call.done) return
    const slot = call.slot
    if (slot !== null) this.#send(slot, [Op.CANCEL, call.rid])
    this.#complete(call)
  }

  credit (call: Call, n: number): void {
    if (call.done || call.slot === null || n <= 0) return
    this.#send(call.slot, [Op.CREDIT, call.rid, n])
  }

  #complete (call: Call): void {
    if (call.done) return
    call.done = true
    this.#dropKept(call)
    this.#calls.delete(call.rid)
    const slot = call.slot
    if (slot !== null && call.onSlot) {
      unlinkCall(slot, call)
      if (call.ws) slot.wsOpen--
      else slot.inflight--
      if (call.strikes > 0) slot.suspects--
      if (slot.inflight === 0) slot.idleSince = Date.now()
      this.#maybeRetired(slot)
    }
    this.#pump()
    if (this.#closing) this.#checkDrained()
  }

  #fail (call: Call, err: FerryError): void {
    if (call.done) return
    this.#complete(call)
    call.ex.onFail(err)
  }

  // ── messages ───────────────────────────────────────────────────────────────

  #send (slot: Slot, op: unknown[], transfer?: ArrayBuffer): void {
    if (slot.dead) return
    if (slot.out.length === 0) {
      slot.seq++
      slot.out.push(slot.seq)
    }
    slot.out.push(op)
    if (transfer !== undefined) slot.transfer.push(transfer)
    if (!slot.dirty) {
      slot.dirty = true
      this.#dirty.push(slot)
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flush)
    }
  }

  #flush = (): void => {
    this.#flushScheduled = false
    const dirty = this.#dirty
    this.#dirty = []
    for (const slot of dirty) {
      slot.dirty = false
      if (slot.dead || slot.out.length === 0) continue
      const out = slot.out
      const transfer = slot.transfer
      slot.out = []
      slot.transfer = []
      slot.port.postMessage(out, transfer)
    }
    this.#bodyBuffers.posted()
  }

  #undirty (slot: Slot): void {
    if (!slot.dirty) return
    slot.dirty = false
    const i = this.#dirty.indexOf(slot)
    if (i >= 0) this.#dirty.splice(i, 1)
  }

  #onMessage (slot: Slot, msg: unknown[]): void {
    if (slot.dead) return
    for (let i = 0; i < msg.length; i++) {
      const op = msg[i] as unknown[]
      switch (op[0]) {
        case Op.READY: this.#onReady(slot, op[1] as number); break
        case Op.PONG: slot.pingSentAt = 0; break
        case Op.HEAD: {
          const call = this.#calls.get(op[1] as number)
          if (call === undefined || call.done) break
          call.headReceived = true
          this.#dropKept(call)
          const end = op[6] as boolean
          if (op[2] === 101 && !end && call.slot !== null && call.onSlot) {
            // a WebSocket: long-lived, it gives its concurrency place back
            call.ws = true
            call.slot.inflight--
            call.slot.wsOpen++
            this.#pump()
          }
          if (end) this.#complete(call)
          call.ex.onHead(op[2] as number, op[3] as string[], op[4] as number, op[5] as Uint8Array | null, end)
          break
        }
        case Op.CHUNK: {
          const call = this.#calls.get(op[1] as number)
          if (call !== undefined && !call.done) call.ex.onChunk(op[2] as Uint8Array)
          break
        }
        case Op.END: {
          const call = this.#calls.get(op[1] as number)
          if (call === undefined || call.done) break
          this.#complete(call)
          call.ex.onEnd()
          break
        }
        case Op.CONSUMED: {
          const call = this.#calls.get(op[1] as number)
          if (call === undefined || call.done) break
          // a re-run consumes the body again: return upstream only credit not returned before
          call.consumedRun += op[2] as number
          if (call.consumedRun > call.consumedReported) {
            const n = call.consumedRun - call.consumedReported
            call.consumedReported = call.consumedRun
            call.ex.onConsumed(n)
          }
          break
        }
        case Op.FAIL: {
          const call = this.#calls.get(op[1] as number)
          if (call === undefined) break
          this.#fail(call, appError(op[3] as 'FERRY_ERR_APP_RESPONSE_BODY', op[4] as string))
          break
        }
        case Op.UNCAUGHT: {
          // the loop failed that request itself (its 500 or FAIL follows); the thread lives
          this.counters.uncaught++
          slot.uncaught++
          if (this.#o.maxUncaught > 0 && slot.uncaught >= this.#o.maxUncaught) this.#retire(slot, 'max-uncaught')
          break
        }
      }
    }
  }

  #onReady (slot: Slot, threadId: number): void {
    slot.ready = true
    slot.threadId = threadId
    slot.idleSince = Date.now()
    if (this.#readyCount() >= Math.max(1, this.#o.threadsMin)) {
      for (const w of this.#readyWaiters.splice(0)) w.resolve()
    }
    this.#pump()
  }

  // ── timers ─────────────────────────────────────────────────────────────────

  #sweep (): void {
    const now = Date.now()
    const timeout = this.#o.timeout
    if (timeout > 0) {
      for (const call of this.#calls.values()) {
        if (call.done || call.headReceived) continue
        // The clock runs from when a worker begins the request (uWSGI's harakiri does the
        // same): waiting in the queue, or behind a stuck request on its thread, does not count.
        const slot0 = call.slot
        if (slot0 === null || call.seqOnSlot > Atomics.load(slot0.started, 0)) {
          call.start = now
          continue
        }
        if (now - call.start < timeout) continue
        this.counters.timedOut++
        const slot = call.slot
        this.#o.log.warn({ reqId: call.ex.head.requestId, threadId: slot?.threadId, code: 'FERRY_ERR_APP_TIMEOUT', ms: now - call.start }, 'request timed out')
        if (slot !== null) {
          this.#send(slot, [Op.CANCEL, call.rid])
          if (slot.pingSentAt === 0) {
            slot.pingSentAt = now
            this.#send(slot, [Op.PING, ++slot.pingSeq])
          }
        }
        this.#fail(call, appError('FERRY_ERR_APP_TIMEOUT', `${timeout} ms`))
      }
      // harakiri: a worker whose event loop did not answer the heartbeat is stuck
      const grace = Math.max(200, Math.min(timeout, 2000))
      for (const slot of [...this.#slots]) {
        if (slot.pingSentAt > 0 && now - slot.pingSentAt > grace && !slot.dead) {
          this.counters.replaced++
          this.#o.log.error({ threadId: slot.threadId, code: 'FERRY_ERR_APP_WORKER_REPLACED' }, 'worker is stuck (no heartbeat after a timeout); terminating and replacing it')
          this.#kill(slot, 'FERRY_ERR_APP_WORKER_REPLACED')
        }
      }
    }
    // shrink: threads above the minimum that sat idle
    if (this.#liveSlots() > Math.max(1, this.#o.threadsMin)) {
      for (const slot of this.#slots) {
        if (this.#liveSlots() <= Math.max(1, this.#o.threadsMin)) break
        if (slot.ready && !slot.retiring && slot.inflight === 0 && slot.wsOpen === 0 && now - slot.idleSince > this.#o.idleTimeout) {
          slot.retiring = true
          this.#maybeRetired(slot)
        }
      }
    }
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────

  /** Ask every open WebSocket's handler side to close with `code` (shutdown: 1001). */
  closeWebSockets (code: number, reason: string): number {
    let n = 0
    for (const call of this.#calls.values()) {
      if (!call.ws || call.done || call.slot === null) continue
      this.#send(call.slot, [Op.WS_CLOSE, call.rid, code, reason])
      n++
    }
    return n
  }

  /** Stop taking requests; resolves when every accepted request has finished. */
  drain (): Promise<void> {
    this.#closing = true
    return new Promise((resolve) => {
      this.#drainWaiters.push(resolve)
      this.#checkDrained()
    })
  }

  #checkDrained (): void {
    if (this.#calls.size > 0) return
    for (const w of this.#drainWaiters.splice(0)) w()
  }

  /** Fail what is left and end every thread. */
  async destroy (): Promise<void> {
    this.#closing = true
    clearInterval(this.#sweepTimer)
    for (const call of this.#calls.values()) this.#fail(call, appError('FERRY_ERR_APP_SHUTTING_DOWN'))
    for (const slot of [...this.#slots]) {
      slot.dead = true
      slot.port.postMessage([++slot.seq, [Op.STOP]], [])
      slot.abort.abort()
      slot.port.close()
    }
    this.#slots.clear()
    if (this.#piscina !== null) await this.#piscina.close({ force: true }).catch(() => {})
  }
}

/** Append a call to its slot's list (the order #orphan walks). */
function linkCall (slot: Slot, call: Call): void {
  call.onSlot = true
  call.prevOnSlot = slot.lastCall
  call.nextOnSlot = null
  if (slot.lastCall === null) slot.firstCall = call
  else slot.lastCall.nextOnSlot = call
  slot.lastCall = call
}

function unlinkCall (slot: Slot, call: Call): void {
  const prev = call.prevOnSlot
  const next = call.nextOnSlot
  if (prev === null) slot.firstCall = next
  else prev.nextOnSlot = next
  if (next === null) slot.lastCall = prev
  else next.prevOnSlot = prev
  call.onSlot = false
  call.prevOnSlot = null
  call.nextOnSlot = null
}
