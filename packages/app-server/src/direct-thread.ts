/**
 * One `--direct` thread: an app server of its own (handlers inline, as with --threads 0)
 * listening on this thread's addresses, so a front's requests reach the thread that runs them
 * with no hop through the main thread. The main thread (direct.ts) starts it, watches its
 * heartbeat, asks it for its figures, and tells it to shut down; this file is the thread's
 * side of those messages.
 */
import { parentPort, threadId, workerData } from 'node:worker_threads'
import type { FerryError } from '@ferry/protocol'
import pino from 'pino'
import { flushLogSync, logDestination } from './log-stream.js'
import { attributeInlineUncaught } from './slot.js'
import { AppServer } from './server.js'
import { copyEvents, type DirectThreadData, type FromThread, gaugesOf, type ToThread } from './direct-messages.js'
import { MIRROR_CELLS } from './metrics.js'

const data = workerData as DirectThreadData
const port = parentPort!
const log = pino({ level: data.options.logLevel, base: { pid: process.pid, thread: threadId, direct: data.index } }, logDestination())

const post = (m: FromThread): void => port.postMessage(m)

/** The heartbeat the main thread watches: a counter this thread's event loop moves every tick. */
// (the same tick copies the pools' event counters to shared memory: see copyEvents)
let server: AppServer | null = null
const beat = setInterval(() => {
  Atomics.add(data.beat, 0, 1)
  if (server !== null) copyEvents(server, data.events)
}, data.tick)
beat.unref()

// Uncaught exceptions and unhandled rejections, as in a pool worker (worker.ts): one raised by
// a request's async work fails that request and the thread goes on; after --max-uncaught of
// them the main thread replaces this thread gracefully; one that belongs to no running request
// ends the thread (the main thread replaces it). --max-uncaught 0: Node's default, every one
// ends the thread.
if (data.options.maxUncaught > 0) {
  attributeInlineUncaught(() => post({ op: 'recycle' }), (err, origin) => {
    flushLogSync(log)
    // written synchronously: a line handed to the batching stream may still be in flight when
    // the thread ends, and reach stdout after the main thread's "replaced" line
    const last = pino({ level: 'error', base: { pid: process.pid, thread: threadId, direct: data.index } }, pino.destination({ fd: 1, sync: true }))
    last.error({ err, origin, code: 'FERRY_ERR_APP_WORKER_CRASHED' }, 'uncaught exception outside any running request: the direct thread ends (the main thread replaces it)')
    post({ op: 'crashed' }) // logged here, with the error: the main thread does not log it again
    process.exit(1)
  })
}

let running: AppServer
try {
  running = await AppServer.start(data.options, log)
} catch (err) {
  const e = err as FerryError
  post({ op: 'failed', code: e.code ?? 'FERRY_ERR_APP_LISTEN', message: e.message ?? String(err) })
  flushLogSync(log)
  process.exit(1)
}
server = running
// the counters go to shared memory as well, where the main thread reads them (even after this
// thread is gone); with one mount its figures are the server's (AppServer.onRequestDone)
running.metrics.mirror = data.counters.subarray(0, MIRROR_CELLS)
if (running.mounts.length > 1) {
  running.mounts.forEach((m, i) => { m.metrics.mirror = data.counters.subarray((i + 1) * MIRROR_CELLS, (i + 2) * MIRROR_CELLS) })
}
post({ op: 'listening', addresses: running.addresses, threadId, mounts: running.mounts.map((m) => m.label) })

port.on('message', (m: ToThread) => {
  if (m.op === 'stats') {
    copyEvents(running, data.events)
    post({ op: 'stats', seq: m.seq, gauges: gaugesOf(running) })
    return
  }
  if (m.op === 'shutdown') {
    const done = running.shutdown()
    // shutdown() closed the listeners before its first await: the addresses are free now
    post({ op: 'unbound' })
    done.then((drained) => {
      clearInterval(beat)
      copyEvents(running, data.events)
      post({ op: 'stopped', drained })
      flushLogSync(log)
      port.close()
    }, (err: unknown) => {
      log.error({ err }, 'direct thread shutdown failed')
      flushLogSync(log)
      process.exit(1)
    })
  }
})
