/**
 * The dispatcher: a piscina pool in which every thread runs one long-lived loop task
 * (worker.ts), fed through its own MessagePort with one batched message per event-loop turn
 * (outbox.ts). The Pool owns the calls, the queue and the slots' lifecycle: it dispatches to
 * a slot (slot.ts pickSlot: light requests packed onto as few threads as their load needs,
 * others to the least-loaded) within a bounded queue, routes the loops' replies to
 * the connections, enforces the per-request timeout with harakiri (a worker that does not
 * answer a heartbeat after a timeout is terminated and replaced), recycles after max-requests
 * or max-uncaught, recovers from crashes (re-dispatching what it may, orphans.ts), and grows /
 * shrinks between min and max threads. `threads.max === 0` runs the loop on the main thread.
 */
import { type FerryError, IntTable } from '@ferry/protocol'
import type { Piscina } from 'piscina'
import { BodyBuffers } from './body-buffers.js'
import { Call, consumedCredit, type Exchange, keepBody, linkCall, rewindCall, seqBegun, unlinkCall } from './call.js'
import { appError } from './errors.js'
import { Op } from './messages.js'
import { stripPrefix } from './mounts.js'
import { type DeathCode, detachCalls, Fate, orphanFate, soleCause } from './orphans.js'
import { Outbox } from './outbox.js'
import type { PoolOptions } from './pool-options.js'
import { codedError, createPiscina, inlineThread, liveCount, packRoom, pickSlot, readyCount, sampleActive, sampleCost, type Slot, startSlot } from './slot.js'
import { expiredCalls, heartbeatGrace, idleSlot, stuckSlots, sweepInterval } from './sweep.js'

export { Call, type Exchange } from './call.js'
export type { PoolOptions, PoolSettings } from './pool-options.js'

let nextRid = 1

/** What `counters` counts (ferry_app_workers_events_total's `event` label). */
export const POOL_EVENTS = ['crashed', 'replaced', 'recycled', 'timedOut', 'rejected', 'redispatched', 'uncaught'] as const
export type PoolEvent = typeof POOL_EVENTS[number]

export class Pool {
  #o: PoolOptions
  readonly #piscina: Piscina | null
  #slots = new Set<Slot>()
  #calls = new IntTable<Call>()
  #queue: Call[] = []
  /** Suspects: requests that were running on a thread that died, waiting for their one re-run. */
  #retry: Call[] = []
  readonly #bodyBuffers: BodyBuffers
  readonly #outbox: Outbox
  /** The sweep's interval; null while the pool is idle (#sweep stops it, submit starts it). */
  #sweepTimer: NodeJS.Timeout | null = null
  #slotSeq = 0
  /** µs of a thread's time per request (slot.ts sampleCost), and pickSlot's `room` from it. */
  #costUs = Infinity
  #room = 0
  /** How many threads take packed requests (slot.ts sampleActive). */
  #active = 1
  #closing = false
  #drainWaiters: (() => void)[] = []
  #readyWaiters: { resolve: () => void, reject: (e: Error) => void }[] = []
  #startError: Error | null = null
  /** Counters for stats. */
  readonly counters: Record<PoolEvent, number> = { crashed: 0, replaced: 0, recycled: 0, timedOut: 0, rejected: 0, redispatched: 0, uncaught: 0 }

  constructor (options: PoolOptions) {
    this.#o = options
    this.#bodyBuffers = new BodyBuffers(options.threadsMax > 0)
    this.#outbox = new Outbox(this.#bodyBuffers)
    this.#piscina = createPiscina(options)
    this.#armSweep()
    const n = Math.max(1, options.threadsMin)
    for (let i = 0; i < n; i++) this.#startSlot()
  }

  get threads (): number { let n = 0; for (const s of this.#slots) if (!s.dead) n++; return n }
  get busyThreads (): number { let n = 0; for (const s of this.#slots) if (!s.dead && s.inflight > 0) n++; return n }
  get inflight (): number { return this.#calls.size - this.#queue.length - this.#retry.length }
  /** µs of a worker thread's time per request, as estimated to pack requests (Infinity: not known yet, or handlers run inline). */
  get costUs (): number { return this.#costUs }
  get queued (): number { return this.#queue.length + this.#retry.length }
  get threadIds (): number[] { return [...this.#slots].filter((s) => !s.dead && s.ready).map((s) => s.threadId) }

  /** Resolves once the minimum number of threads have loaded the handler; rejects if loading fails. */
  ready (): Promise<void> {
    if (this.#startError !== null) return Promise.reject(this.#startError)
    if (readyCount(this.#slots) >= Math.max(1, this.#o.threadsMin)) return Promise.resolve()
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }))
  }

  // ── slots ──────────────────────────────────────────────────────────────────

  #startSlot (): void {
    const { slot, task } = startSlot(this.#o, this.#piscina, ++this.#slotSeq)
    this.#slots.add(slot)
    slot.port.on('message', (msg) => this.#onMessage(slot, msg))
    task.then(() => this.#onSlotEnd(slot, null), (err: unknown) => this.#onSlotEnd(slot, err))
  }

  /** The slot takes no more work and gets no more ops (its thread is ended by the caller). */
  #drop (slot: Slot): void {
    slot.dead = true
    this.#slots.delete(slot)
    this.#outbox.undirty(slot)
  }

  #onSlotEnd (slot: Slot, err: unknown): void {
    const wasDead = slot.dead
    this.#drop(slot)
    slot.port.close()
    if (wasDead) return // we killed it and handled its calls already
    if (!slot.ready && err !== null && !this.#closing) {
      // The handler failed to load (or the thread died before it was ready). The error came
      // through piscina as a plain Error: give it its code back.
      err = codedError(err)
      this.#o.log.error({ err, code: (err as FerryError)?.code }, 'worker failed to start')
      if (readyCount(this.#slots) === 0 && this.#readyWaiters.length > 0) {
        this.#startError = err as Error
        for (const w of this.#readyWaiters.splice(0)) w.reject(err as Error)
        return
      }
      if (readyCount(this.#slots) === 0) return
    }
    if (err !== null && !slot.retiring) {
      this.counters.crashed++
      this.#o.log.error({ err, threadId: slot.threadId, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'worker crashed; replacing it')
    }
    this.#orphan(slot, 'FERRY_ERR_APP_WORKER_CRASHED')
    this.#refill()
  }

  /**
   * Fail or re-dispatch the calls of a dead slot (crashed, or terminated as stuck), each as
   * orphans.ts orphanFate decides. Calls already answered (a timed-out request got its 504
   * before the kill) are not here.
   */
  #orphan (slot: Slot, code: DeathCode): void {
    const calls = detachCalls(slot)
    const started = Atomics.load(slot.started, 0)
    const sole = soleCause(calls, started, code)
    const redo: Call[] = []
    let suspects = 0
    let failed = 0
    for (const c of calls) {
      if (c.done) continue
      c.slot = null
      const fate = orphanFate(c, seqBegun(c.seqOnSlot, started), sole)
      if (fate === Fate.FAIL) {
        failed++
        this.#fail(c, appError(code, `thread ${slot.threadId}`))
      } else if (fate === Fate.REDO) {
        rewindCall(c)
        redo.push(c)
      } else {
        c.strikes = 1
        rewindCall(c)
        suspects++
        this.#retry.push(c)
      }
    }
    // never started: they go first, ahead of the queue
    for (let i = redo.length - 1; i >= 0; i--) this.#queue.unshift(redo[i]!)
    this.counters.redispatched += redo.length + suspects
    if (calls.length > 0) {
      this.#o.log.warn({ threadId: slot.threadId, code, notStarted: redo.length, suspects, failed }, 'requests of a dead thread: not started re-dispatched, begun idempotent re-run once as suspects, the rest failed')
    }
  }

  /** Keep the pool at its minimum size; start more if work is waiting. */
  #refill (): void {
    if (this.#closing) return
    while (liveCount(this.#slots) < Math.max(1, this.#o.threadsMin)) this.#startSlot()
    if (this.#queue.length + this.#retry.length > 0 && liveCount(this.#slots) < Math.max(1, this.#o.threadsMax)) {
      let starting = 0
      for (const s of this.#slots) if (!s.ready && !s.dead) starting++
      if (starting === 0) this.#startSlot()
    }
    this.#pump()
  }

  #kill (slot: Slot, code: DeathCode): void {
    if (slot.dead) return
    this.#drop(slot)
    slot.abort.abort(appError(code))
    slot.port.close()
    this.#orphan(slot, code)
    this.#refill()
  }

  // ── dispatch ───────────────────────────────────────────────────────────────

  /** Accept a request; returns the call, or the error to answer with (queue full, closing). */
  submit (ex: Exchange): Call | FerryError {
    if (this.#closing) return appError('FERRY_ERR_APP_SHUTTING_DOWN')
    if (this.#sweepTimer === null) this.#armSweep()
    const call = new Call(nextRid++, ex, Date.now())
    const slot = pickSlot(this.#slots, this.#o.concurrency, false, this.#room, this.#active)
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

  #assign (call: Call, slot: Slot): void {
    call.slot = slot
    if (slot.inflight++ === 0) slot.busySince = performance.now()
    linkCall(slot, call)
    if (call.strikes > 0) slot.suspects++
    slot.served++
    if (slot.maxServed > 0 && slot.served >= slot.maxServed) this.#retire(slot, 'max-requests')
    const h = call.ex.head
    const prefix = this.#o.prefix
    const req = call.ex.upgrade === true ? Op.REQ_WS : Op.REQ
    if (prefix === '') this.#outbox.send(slot, [req, call.rid, h.method, h.scheme, h.authority, h.path, h.headers, h.remoteAddress, h.remotePort, h.requestId, h.bodyLength])
    else this.#outbox.send(slot, [req, call.rid, h.method, h.scheme, h.authority, stripPrefix(h.path, prefix), h.headers, h.remoteAddress, h.remotePort, h.requestId, h.bodyLength, prefix, h.path])
    call.seqOnSlot = ++slot.sent
    for (const ab of call.pendingBody) this.#forward(call, slot, ab)
    call.pendingBody.length = 0
    if (call.bodyEnded) this.#outbox.send(slot, [Op.BODY_END, call.rid])
  }

  #pump (): void {
    while (this.#retry.length > 0) {
      if (this.#retry[0]!.done) {
        this.#retry.shift()
        continue
      }
      const slot = pickSlot(this.#slots, this.#o.concurrency, true)
      if (slot === null) break
      this.#assign(this.#retry.shift()!, slot)
    }
    while (this.#queue.length > 0) {
      const slot = pickSlot(this.#slots, this.#o.concurrency, false, this.#room, this.#active)
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
    this.#drop(slot)
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
    if (keepBody(call, ab)) {
      this.#outbox.send(slot, [Op.BODY, call.rid, ab])
    } else {
      this.#dropKept(call)
      this.#outbox.send(slot, [Op.BODY, call.rid, ab], ab)
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
    if (call.slot !== null) this.#outbox.send(call.slot, [Op.BODY_END, call.rid])
  }

  /** The client went away: stop the handler (its signal aborts) and forget the call. */
  cancel (call: Call): void {
    if (call.done) return
    const slot = call.slot
    if (slot !== null) this.#outbox.send(slot, [Op.CANCEL, call.rid])
    this.#complete(call)
  }

  credit (call: Call, n: number): void {
    if (call.done || call.slot === null || n <= 0) return
    this.#outbox.send(call.slot, [Op.CREDIT, call.rid, n])
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

  #onMessage (slot: Slot, msg: unknown[]): void {
    if (slot.dead) return
    slot.lastHeard = performance.now()
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
          const n = consumedCredit(call, op[2] as number)
          if (n > 0) call.ex.onConsumed(n)
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
          if (this.#o.maxUncaught > 0 && slot.uncaught >= this.#o.maxUncaught) {
            if (this.#piscina === null) inlineThread.onMaxUncaught?.()
            else this.#retire(slot, 'max-uncaught')
          }
          break
        }
      }
    }
  }

  #onReady (slot: Slot, threadId: number): void {
    slot.ready = true
    slot.threadId = threadId
    slot.idleSince = Date.now()
    // the cost and utilization samples count from here: loading the handler is not requests' work
    if (slot.started.length > 2) {
      slot.loadBusy = Atomics.load(slot.started, 1)
      slot.loadActive = Atomics.load(slot.started, 2)
      slot.loadAt = performance.now()
    }
    if (readyCount(this.#slots) >= Math.max(1, this.#o.threadsMin)) {
      for (const w of this.#readyWaiters.splice(0)) w.resolve()
    }
    this.#pump()
  }

  // ── timers ─────────────────────────────────────────────────────────────────

  #sweep (): void {
    const now = Date.now()
    if (this.#piscina !== null) {
      this.#costUs = sampleCost(this.#slots, this.#costUs)
      this.#room = packRoom(this.#costUs)
      this.#active = sampleActive(this.#slots, this.#active, performance.now())
    }
    const timeout = this.#o.timeout
    if (timeout > 0) {
      for (const call of expiredCalls(this.#calls.values(), now, timeout)) {
        if (call.done) continue
        this.counters.timedOut++
        const slot = call.slot
        this.#o.log.warn({ reqId: call.ex.head.requestId, threadId: slot?.threadId, code: 'FERRY_ERR_APP_TIMEOUT', ms: now - call.start }, 'request timed out')
        if (slot !== null) {
          this.#outbox.send(slot, [Op.CANCEL, call.rid])
          if (slot.pingSentAt === 0) {
            slot.pingSentAt = now
            this.#outbox.send(slot, [Op.PING, ++slot.pingSeq])
          }
        }
        this.#fail(call, appError('FERRY_ERR_APP_TIMEOUT', `${timeout} ms`))
      }
      // harakiri: a worker whose event loop did not answer the heartbeat is stuck
      for (const slot of stuckSlots(this.#slots, now, heartbeatGrace(timeout))) {
        if (slot.dead) continue
        this.counters.replaced++
        this.#o.log.error({ threadId: slot.threadId, code: 'FERRY_ERR_APP_WORKER_REPLACED' }, 'worker is stuck (no heartbeat after a timeout); terminating and replacing it')
        this.#kill(slot, 'FERRY_ERR_APP_WORKER_REPLACED')
      }
    }
    // shrink: threads above the minimum that sat idle
    const min = Math.max(1, this.#o.threadsMin)
    if (liveCount(this.#slots) > min) {
      for (const slot of this.#slots) {
        if (liveCount(this.#slots) <= min) break
        if (idleSlot(slot, now, this.#o.idleTimeout)) {
          slot.retiring = true
          this.#maybeRetired(slot)
        }
      }
    }
    // Idle — nothing in flight or queued, no thread to retire, no heartbeat awaited: stop
    // until the next request, so an idle node does not wake four times a second for nothing.
    if (this.#calls.size === 0 && liveCount(this.#slots) <= min && !this.#awaitingPong()) {
      clearInterval(this.#sweepTimer!)
      this.#sweepTimer = null
    }
  }

  #awaitingPong (): boolean {
    for (const slot of this.#slots) if (slot.pingSentAt > 0 && !slot.dead) return true
    return false
  }

  #armSweep (): void {
    if (this.#closing) return
    this.#sweepTimer = setInterval(() => this.#sweep(), sweepInterval(this.#o.timeout))
    this.#sweepTimer.unref()
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────

  /** Ask every open WebSocket's handler side to close with `code` (shutdown: 1001). */
  closeWebSockets (code: number, reason: string): number {
    let n = 0
    for (const call of this.#calls.values()) {
      if (!call.ws || call.done || call.slot === null) continue
      this.#outbox.send(call.slot, [Op.WS_CLOSE, call.rid, code, reason])
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
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer)
    this.#sweepTimer = null
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
