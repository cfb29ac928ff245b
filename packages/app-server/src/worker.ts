/**
 * The piscina task: one long-lived loop per worker thread. It loads the handler module once
 * per thread (per reload generation), then serves batches on the transferred MessagePort until
 * the main thread sends STOP (or aborts the task, which terminates the thread).
 */
import type { MessagePort } from 'node:worker_threads'
import { threadId } from 'node:worker_threads'
import pino, { type Logger } from 'pino'
import type { FetchHandler } from './handler.js'
import { WorkerLoop } from './loop.js'
import type { LoopOptions, Port } from './messages.js'
import { loadStack } from './middleware.js'
import { installLightResponse } from './response.js'

export interface LoopTask extends LoopOptions {
  port: MessagePort
  /** Int32Array over a SharedArrayBuffer: requests started (see WorkerLoop). */
  started: Int32Array
}

let log: Logger | null = null
const handlers = new Map<string, Promise<FetchHandler>>()

export default async function loopTask (task: LoopTask): Promise<void> {
  if (log === null) log = pino({ level: task.logLevel, base: { pid: process.pid, thread: threadId } }).child({ component: 'worker' })
  installLightResponse()
  const key = task.middleware.length === 0 ? task.handlerUrl : `${task.handlerUrl} ${JSON.stringify(task.middleware)}`
  let h = handlers.get(key)
  if (h === undefined) {
    h = loadStack(task.handlerUrl, task.middleware, task.generation)
    handlers.set(key, h)
  }
  const handler = await h
  const port = task.port as unknown as Port
  const loop = new WorkerLoop(port, handler, log, task.started, task.wsMaxMessage)
  await loop.stopped
  task.port.close()
}
