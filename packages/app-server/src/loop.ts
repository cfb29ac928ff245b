/**
 * The worker loop: serves a stream of batches from the main thread on one port, running the
 * handler for every request. Used in a piscina worker (worker.ts) and, with an in-process
 * port, on the main thread for --threads 0. One postMessage per event-loop turn goes back.
 *
 * In a worker thread each request runs inside an AsyncLocalStorage context holding its job,
 * so an uncaught exception or unhandled rejection can be traced to the request whose async
 * work raised it (see `uncaught`): that request fails, the thread goes on.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { threadId } from 'node:worker_threads'
import { DEFAULT_WS_MAX_MESSAGE, FerryError, IntTable } from '@ferry/protocol/core'
import type { Logger } from 'pino'
import { Context, type HandlerContext, kJob } from './context.js'
import { DEFAULT_LOG_STACK_INTERVAL, ErrorLog } from './error-log.js'
import { APP_SERVER_ERRORS } from './errors.js'
import type { FetchHandler } from './handler.js'
import { Op, type Port, RESPONSE_WINDOW } from './messages.js'
import { abortError, abortRequest, BodySource, createRequest, requestUrl } from './request.js'
import { unpackResponse } from './response.js'
import { type FerryWebSocket, upgradeHeaders } from './ws-socket.js'

export type { HandlerContext }

/** How far a job's response got (Job.res). */
const Res = {
  /** nothing sent: an error can still be a 500 answer */
  NONE: 0,
  /** the head went out, the body is streaming: an error is a FAIL (the front resets) */
  HEAD: 1,
  /** the response is complete (the job may still wait for waitUntil promises) */
  DONE: 2
} as const

interface Job {
  /** The loop running it (a thread may run one loop per mount: --direct threads). */
  loop: WorkerLoop
  rid: number
  method: string
  request: Request
  body: BodySource | null
  /** The main thread expects nothing more for this request (CANCEL, or failed by `uncaught`). */
  cancelled: boolean
  /** Out of the loop's table (answered and settled, or cancelled). */
  done: boolean
  /** Its handler (with the response body) and its waitUntil promises have settled. */
  settled: boolean
  res: number
  /** waitUntil promises (the context's closure pushes to the same list). */
  pending: Promise<unknown>[]
  credit: number
  creditWaiter: (() => void) | null
  context: HandlerContext
  /** The socket upgradeWebSocket() made for this request (its response may not be returned). */
  ws: FerryWebSocket | null
  /** The response body's reader while #pump runs (cancelled when the job is abandoned). */
  reader: ReadableStreamDefaultReader<Uint8Array> | null
}

/**
 * The request a piece of async work belongs to. One instance per thread; it is only entered
 * (and Node's async hooks only enabled) when the loop attributes errors: in pool workers, on
 * --direct threads and on the main thread of `ferry app --threads 0` (attributeInlineUncaught),
 * unless --max-uncaught is 0.
 */
const jobContext = new AsyncLocalStorage<Job>()

/** The request whose code is running, as an opaque token (see WorkerLoop.request). */
export type RequestToken = object

export class WorkerLoop {
  /** The request whose async context the caller runs in, if any (for errors reported later). */
  static request (): RequestToken | undefined {
    return jobContext.getStore()
  }

  /**
   * `uncaught` on the loop whose request raised the error (the context's, or `request`'s):
   * false when the error belongs to no running request of any loop.
   */
  static uncaught (err: unknown, origin: string, request: RequestToken | undefined = jobContext.getStore()): boolean {
    const job = request as Job | undefined
    return job?.loop.uncaught(err, origin, job) === true
  }

  #port: Port
  #handler: FetchHandler
  #log: Logger
  #attribute: boolean
  /** Not a Map: one insert and one delete per request would churn it (see IntTable). */
  #jobs = new IntTable<Job>()
  #out: unknown[] = []
  #flushScheduled = false
  /** A pool worker (`started` has room for it) times its batches (see #flush): cumulative ms, and when this one began (-1: none). */
  #timed: boolean
  #busyMs = 0
  #batchAt = -1
  #stopping = false
  #resolveStopped: (() => void) | null = null
  readonly stopped: Promise<void>

  #started: Int32Array
  #startedCount = 0
  #wsMaxMessage: number
  #errors: ErrorLog

  /**
   * `started` (shared with the main thread) counts the requests this loop has begun: if the
   * thread dies or gets stuck, the main thread re-dispatches the ones past it, which never ran.
   * When it has more elements (a pool worker), the loop keeps there the time its batches kept
   * it busy and its event loop's active time (see #flush; slot.ts Slot.started).
   * `attribute`: run each request in its job's async context, so `uncaught` can find it.
   */
  constructor (port: Port, handler: FetchHandler, log: Logger, started: Int32Array, attribute = false, wsMaxMessage = DEFAULT_WS_MAX_MESSAGE, stackIntervalMs = DEFAULT_LOG_STACK_INTERVAL) {
    this.#port = port
    this.#errors = new ErrorLog(stackIntervalMs)
    this.#wsMaxMessage = wsMaxMessage
    this.#started = started
    this.#timed = started.length > 1
    this.#handler = handler
    this.#log = log
    this.#attribute = attribute
    this.stopped = new Promise((resolve) => { this.#resolveStopped = resolve })
    port.on('message', (msg) => this.#onBatch(msg))
    this.#push([Op.READY, threadId])
  }

  #push (op: unknown[]): void {
    this.#out.push(op)
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flush)
    }
  }

  /** Post what is waiting now (before the thread ends: answers already made still go out). */
  flush (): void {
    this.#flush()
  }

  #flush = (): void => {
    this.#flushScheduled = false
    if (this.#batchAt >= 0) {
      // a pool worker publishes how long its batches kept it busy — from a batch's arrival to
      // the end of that turn (its requests' synchronous work, and what settles in the same
      // turn), µs, wrapping at 2^32 — for the pool's estimate of what a request costs
      // (slot.ts sampleCost). Two clock reads per batch.
      this.#busyMs += performance.now() - this.#batchAt
      this.#batchAt = -1
      Atomics.store(this.#started, 1, Math.round(this.#busyMs * 1000) | 0)
    }
    // and all the time its event loop was active (the work after awaits too), at each post of
    // answers: ≈ 0.1 µs
    if (this.#timed) Atomics.store(this.#started, 2, Math.round(performance.eventLoopUtilization().active * 1000) | 0)
    if (this.#out.length === 0) return
    const out = this.#out
    this.#out = []
    // nothing is transferred: a response body may be the handler's own buffer, still in use
    // by it (a cached page returned by every request), so it goes by copy (see ownBytes())
    this.#port.postMessage(out)
  }

  #onBatch (msg: unknown[]): void {
    if (this.#timed && this.#batchAt < 0) {
      this.#batchAt = performance.now()
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        setImmediate(this.#flush)
      }
    }
    for (let i = 1; i < msg.length; i++) {
      const op = msg[i] as unknown[]
      switch (op[0]) {
        case Op.REQ: this.#start(op, false); break
        case Op.REQ_WS: this.#start(op, true); break
        case Op.WS_CLOSE: this.#jobs.get(op[1] as number)?.ws?.shutdown(op[2] as number, op[3] as string); break
        case Op.BODY: {
          const job = this.#jobs.get(op[1] as number)
          if (job?.body != null) job.body.push(new Uint8Array(op[2] as ArrayBuffer))
          break
        }
        case Op.BODY_END: this.#jobs.get(op[1] as number)?.body?.end(); break
        case Op.CANCEL: this.#cancel(op[1] as number); break
        case Op.CREDIT: {
          const job = this.#jobs.get(op[1] as number)
          if (job !== undefined) {
            job.credit += op[2] as number
            if (job.ws !== null) job.ws.credited()
            const w = job.creditWaiter
            if (w !== null) {
              job.creditWaiter = null
              w()
            }
          }
          break
        }
        case Op.PING: this.#push([Op.PONG, op[1]]); break
        case Op.STOP:
          this.#stopping = true
          this.#maybeStopped()
          break
      }
    }
  }

  #maybeStopped (): void {
    if (this.#stopping && this.#jobs.size === 0 && this.#resolveStopped !== null) {
      this.#flush()
      const r = this.#resolveStopped
      this.#resolveStopped = null
      r()
    }
  }

  #start (op: unknown[], upgradable: boolean): void {
    // [REQ, rid, method, scheme, authority, path, headers, remoteAddress, remotePort, requestId, bodyLength]
    const rid = op[1] as number
    Atomics.store(this.#started, 0, ++this.#startedCount)
    const method = op[2] as string
    const headers = op[6] as string[]
    const bodyLength = op[10] as number
    const body = bodyLength === 0 ? null : new BodySource((n) => this.#push([Op.CONSUMED, rid, n]), false)
    const url = requestUrl(op[3] as string, op[4] as string, op[5] as string, headers)
    const request = createRequest({ method, url, headers, body })
    const requestId = op[9] as string
    const scriptName = op.length > 11 ? op[11] as string : ''
    const pending: Promise<unknown>[] = []
    const context = new Context(requestId, op[7] as string, op[8] as number, scriptName, bodyLength,
      scriptName === '' ? url : requestUrl(op[3] as string, op[4] as string, op[12] as string, headers), this.#log, pending)
    const job: Job = { loop: this, rid, method, request, body, cancelled: false, done: false, settled: false, res: Res.NONE, pending, credit: RESPONSE_WINDOW, creditWaiter: null, context, ws: null, reader: null }
    if (upgradable) context[kJob] = job
    this.#jobs.set(rid, job)
    // One run() per request: everything the request's code schedules (timers, promises,
    // streams) carries the job. Arguments, not a closure: nothing allocated per request here.
    if (this.#attribute) jobContext.run(job, WorkerLoop.#runJob, this, job)
    else this.#run(job)
  }

  static #runJob (loop: WorkerLoop, job: Job): void {
    loop.#run(job)
  }

  /**
   * An uncaught exception or unhandled rejection in this thread (worker.ts's process
   * listeners). It is the request's when its async context holds a job whose code is still
   * running: its handler, response body or waitUntil promises have not settled — also after
   * the main thread answered it (timed out, client gone): the error is still its own. Then
   * it is logged with the request id (FERRY_ERR_APP_UNCAUGHT), the request is answered 500
   * (or FAILed once its head went out; nothing if its response was complete or it was
   * already answered), its signal aborts, the job leaves the loop, and the main thread is
   * told (it counts them against --max-uncaught). Returns false when the error belongs to no
   * running request (no context, or one that settled: a timer it left behind, a connection
   * pool it happened to create): the caller ends the thread. `request` (from
   * WorkerLoop.request()) names the request when the error is reported outside its context.
   */
  uncaught (err: unknown, origin: string, request: RequestToken | undefined = jobContext.getStore()): boolean {
    const job = request as Job | undefined
    if (job === undefined || job.settled) return false
    this.#push([Op.UNCAUGHT, job.rid])
    const answered = job.cancelled ? 'already answered' : job.res === Res.NONE ? '500' : job.res === Res.HEAD ? 'failed after its head' : 'response was complete'
    this.#log.error({ reqId: job.context.requestId, err: this.#errors.err(err, job.context.requestId), code: 'FERRY_ERR_APP_UNCAUGHT', origin, answered }, 'uncaught exception in a request: that request fails, the thread goes on')
    if (job.cancelled) return true
    if (job.res === Res.NONE) this.#sendError(job, 500, 'FERRY_ERR_APP_UNCAUGHT')
    else if (job.res === Res.HEAD) this.#push([Op.FAIL, job.rid, 500, 'FERRY_ERR_APP_UNCAUGHT', String((err as Error)?.message ?? err)])
    this.#abandon(job, 'The request failed (uncaught exception)')
    return true
  }

  #cancel (rid: number): void {
    const job = this.#jobs.get(rid)
    if (job === undefined) return
    this.#abandon(job, 'The request was cancelled')
  }

  /** Nothing more goes out for this job: abort its request, stop its body and its pump, drop it. */
  #abandon (job: Job, why: string): void {
    job.cancelled = true
    job.body?.fail(new Error(why))
    // a body stream that went silent is waiting in read(): cancel it, so its cancel() runs
    // (timers and subscriptions it holds end) and the pending read settles
    job.reader?.cancel(abortError(why)).catch(() => {})
    abortRequest(job.request, why)
    const w = job.creditWaiter
    if (w !== null) {
      job.creditWaiter = null
      w()
    }
    // The main thread has forgotten the request: a handler that never settles (an async hang
    // past --timeout) must not hold the job, nor keep STOP from ending the loop.
    this.#finish(job)
  }

  #finish (job: Job): void {
    if (job.done) return
    job.done = true
    this.#jobs.delete(job.rid)
    this.#maybeStopped()
  }

  async #run (job: Job): Promise<void> {
    try {
      const res = await this.#handler(job.request, job.context, { waitUntil: job.context.waitUntil, passThroughOnException () {}, props: {} })
      if (job.cancelled) return
      if (job.ws !== null) {
        const wsHeaders = upgradeHeaders(res)
        if (wsHeaders !== null) {
          job.res = Res.HEAD
          await this.#runWebSocket(job, job.ws, wsHeaders)
          return
        }
        job.ws.abandon()
      }
      const u = res !== null && typeof res === 'object' ? unpackResponse(res as Response) : null
      if (u === null) {
        this.#log.error({ reqId: job.context.requestId, code: 'FERRY_ERR_APP_HANDLER_RESULT', got: res === null ? 'null' : typeof res }, APP_SERVER_ERRORS.FERRY_ERR_APP_HANDLER_RESULT.message)
        this.#sendError(job, 500, 'FERRY_ERR_APP_HANDLER_RESULT')
        return
      }
      const isHead = job.method === 'HEAD'
      if (u.stream === null) {
        const bytes = u.bytes
        const len = bytes === null ? 0 : bytes.byteLength
        if (bytes !== null && !hasHeader(u.headers, 'content-length')) u.headers.push('content-length', String(len))
        job.res = Res.DONE
        this.#push([Op.HEAD, job.rid, u.status, u.headers, isHead ? 0 : len, isHead || len === 0 || bytes === null ? null : ownBytes(bytes), true])
        return
      }
      const declared = contentLength(u.headers)
      if (isHead) {
        job.res = Res.DONE
        this.#push([Op.HEAD, job.rid, u.status, u.headers, 0, null, true])
        u.stream.cancel().catch(() => {})
        return
      }
      job.res = Res.HEAD
      this.#push([Op.HEAD, job.rid, u.status, u.headers, declared, null, false])
      await this.#pump(job, u.stream)
    } catch (err) {
      if (job.cancelled) return
      const headSent = job.res !== Res.NONE
      if (!headSent && err instanceof FerryError && err.code === 'FERRY_ERR_APP_WS_UNSUPPORTED') {
        this.#log.warn({ reqId: job.context.requestId, code: err.code }, err.message)
        this.#sendError(job, 501, err.code)
        return
      }
      const code = headSent ? 'FERRY_ERR_APP_RESPONSE_BODY' : 'FERRY_ERR_APP_HANDLER_THREW'
      // the loop's own logger with the reqId field: the same line as the request's child logger
      // writes, without making that child (a pino child per failed request) on the failure path
      this.#log.error({ reqId: job.context.requestId, err: this.#errors.err(err, job.context.requestId), code }, headSent ? 'response body stream failed' : 'handler threw')
      if (headSent) this.#push([Op.FAIL, job.rid, 500, code, String((err as Error)?.message ?? err)])
      else this.#sendError(job, 500, code)
    } finally {
      job.body?.fail(new Error('response finished'))
      if (job.pending.length > 0) {
        Promise.allSettled(job.pending).then(() => this.#settle(job))
      } else {
        this.#settle(job)
      }
    }
  }

  /** A 101: the stream is the socket's now, until both sides closed it. */
  async #runWebSocket (job: Job, ws: FerryWebSocket, headers: string[]): Promise<void> {
    this.#push([Op.HEAD, job.rid, 101, headers, -1, null, false])
    ws.open({
      credit: () => job.credit,
      push: (bytes) => {
        job.credit -= bytes.byteLength
        this.#push([Op.CHUNK, job.rid, ownBytes(bytes)])
      }
    })
    await ws.run(job.body!, this.#wsMaxMessage)
    if (job.cancelled) return
    job.res = Res.DONE
    this.#push([Op.END, job.rid])
  }

  #settle (job: Job): void {
    job.settled = true
    this.#finish(job)
  }

  async #pump (job: Job, stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = stream.getReader()
    job.reader = reader
    try {
      for (;;) {
        while (job.credit <= 0 && !job.cancelled) {
          await new Promise<void>((resolve) => { job.creditWaiter = resolve })
        }
        if (job.cancelled) {
          reader.cancel().catch(() => {})
          return
        }
        const { done, value } = await reader.read()
        if (job.cancelled) {
          reader.cancel().catch(() => {})
          return
        }
        if (done) break
        let chunk: Uint8Array
        if (typeof value === 'string') chunk = Buffer.from(value as string)
        else if (value instanceof Uint8Array) chunk = value
        else if (ArrayBuffer.isView(value)) chunk = new Uint8Array((value as ArrayBufferView).buffer, (value as ArrayBufferView).byteOffset, (value as ArrayBufferView).byteLength)
        else throw new TypeError('response body chunk is not a Uint8Array')
        if (chunk.byteLength === 0) continue
        job.credit -= chunk.byteLength
        this.#push([Op.CHUNK, job.rid, ownBytes(chunk)])
      }
      job.res = Res.DONE
      this.#push([Op.END, job.rid])
    } finally {
      job.reader = null
      reader.releaseLock()
    }
  }

  #sendError (job: Job, status: number, code: string): void {
    job.res = Res.DONE
    const body = `${REASONS[status] ?? 'Error'} (request id ${job.context.requestId})\n`
    // Its own exact-size buffer: Buffer.from(short string) is a view into an 8 KiB pool slab,
    // and structured clone copies a view's whole buffer (8 KiB per failed request, enough
    // external memory to start full GCs on the main thread when 5% of requests throw).
    const bytes = utf8.encode(body)
    this.#push([Op.HEAD, job.rid, status, [
      'content-type', 'text/plain; charset=utf-8',
      'x-request-id', job.context.requestId,
      'x-ferry-error', code,
      'content-length', String(bytes.length)
    ], job.method === 'HEAD' ? 0 : bytes.length, job.method === 'HEAD' ? null : bytes, true])
  }
}

const utf8 = new TextEncoder()

/** The reasons of the statuses #sendError answers (node:http's STATUS_CODES is a module graph a worker does not otherwise load). */
const REASONS: Record<number, string> = { 500: 'Internal Server Error', 501: 'Not Implemented' }

/**
 * A view that owns its whole ArrayBuffer (structured clone copies the whole buffer of a view).
 * Uint8Array's slice() copies; a Buffer's own slice() is another view — and a small Buffer is a
 * view into Node's shared 8 KiB pool, which a clone would copy whole for every response.
 */
export function ownBytes (u: Uint8Array): Uint8Array {
  return u.byteOffset === 0 && u.byteLength === u.buffer.byteLength ? u : Uint8Array.prototype.slice.call(u)
}

function hasHeader (list: string[], name: string): boolean {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return true
  return false
}

function contentLength (list: string[]): number {
  for (let i = 0; i < list.length; i += 2) {
    if (list[i] === 'content-length') {
      const n = Number(list[i + 1])
      return Number.isSafeInteger(n) && n >= 0 ? n : -1
    }
  }
  return -1
}


/**
 * Node 20 reports a throw inside a queueMicrotask callback only after leaving the callback's
 * async context, where no request can be found: each callback queued by a request's code is
 * wrapped so its error is caught inside and handed to its loop with its request. A callback
 * queued outside any request, or whose request has settled, throws on as Node would. Once per
 * thread (worker.ts, direct-thread.ts).
 */
export function attributeMicrotasks (): void {
  const queue = globalThis.queueMicrotask
  globalThis.queueMicrotask = function queueMicrotask (callback: () => void): void {
    const request = typeof callback === 'function' ? WorkerLoop.request() : undefined
    if (request === undefined) {
      queue(callback)
      return
    }
    queue(() => {
      try {
        callback()
      } catch (err) {
        if (!WorkerLoop.uncaught(err, 'uncaughtException', request)) throw err
      }
    })
  }
}
