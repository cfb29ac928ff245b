/**
 * The piscina task: one long-lived loop per worker thread. It loads the handler module once
 * per thread (per reload generation), then serves batches on the transferred MessagePort until
 * the main thread sends STOP (or aborts the task, which terminates the thread).
 *
 * Uncaught exceptions and unhandled rejections (with --max-uncaught > 0): Node ends a worker
 * thread on either, with every request it runs. Here the thread's process listeners ask the
 * loop whose error it is; an error of one request fails that request and the thread lives
 * on — what an exception in one request does under uWSGI or PHP-FPM. Node warns that
 * resuming after an uncaught exception is unsafe (state the throw interrupted may be left
 * half-changed), so the pool retires a thread gracefully after --max-uncaught of them
 * (gunicorn's max_requests, applied to errors). An error that belongs to no running request
 * (module-level timers, work a settled request left behind) ends the thread as before.
 */
import type { MessagePort } from 'node:worker_threads'
import { threadId } from 'node:worker_threads'
import pino, { type Logger } from 'pino'
import type { FetchHandler } from './handler.js'
import { attributeMicrotasks, WorkerLoop } from './loop.js'
import type { LoopOptions, Port } from './messages.js'
import { loadStack } from './middleware.js'
import { flushLogSync, logDestination } from './log-stream.js'
import { installLightResponse } from './response.js'

export interface LoopTask extends LoopOptions {
  port: MessagePort
  /** Int32Array over a SharedArrayBuffer: requests started (see WorkerLoop). */
  started: Int32Array
}

let log: Logger | null = null
const handlers = new Map<string, Promise<FetchHandler>>()
/** The thread's loop (one per thread), for the process listeners. */
let current: WorkerLoop | null = null
let listening = false

function onError (err: unknown, origin: string): void {
  if (current?.uncaught(err, origin) === true) return
  log!.error({ err, origin, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'uncaught exception outside any running request: the thread ends (the pool replaces it)')
  // answers already made for other requests still go out; the rest the pool re-dispatches or fails
  current?.flush()
  flushLogSync(log!)
  process.exit(1)
}

function listen (): void {
  if (listening) return
  listening = true
  process.on('uncaughtException', (err, origin) => onError(err, origin))
  process.on('unhandledRejection', (reason) => onError(reason, 'unhandledRejection'))
  attributeMicrotasks()
}

export default async function loopTask (task: LoopTask): Promise<void> {
  if (log === null) log = pino({ level: task.logLevel, base: { pid: process.pid, thread: threadId } }, logDestination()).child({ component: 'worker' })
  installLightResponse()
  const key = task.middleware.length === 0 ? task.handlerUrl : `${task.handlerUrl} ${JSON.stringify(task.middleware)}`
  let h = handlers.get(key)
  if (h === undefined) {
    h = loadStack(task.handlerUrl, task.middleware, task.generation)
    handlers.set(key, h)
  }
  const handler = await h
  const port = task.port as unknown as Port
  const attribute = task.maxUncaught > 0
  if (attribute) listen()
  const loop = new WorkerLoop(port, handler, log, task.started, attribute, task.wsMaxMessage, task.logStackInterval)
  current = loop
  await loop.stopped
  flushLogSync(log!) // the thread may be ended once the task returns: batched lines go out now
  task.port.close()
}
