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
import { logDestination } from './log-stream.js'
import { AppServer } from './server.js'
import { type DirectThreadData, type FromThread, gaugesOf, type ToThread } from './direct-messages.js'
import { MIRROR_CELLS } from './metrics.js'

const data = workerData as DirectThreadData
const port = parentPort!
const log = pino({ level: data.options.logLevel, base: { pid: process.pid, thread: threadId, direct: data.index } }, logDestination())

const post = (m: FromThread): void => port.postMessage(m)

/** The heartbeat the main thread watches: a counter this thread's event loop moves every tick. */
const beat = setInterval(() => Atomics.add(data.beat, 0, 1), data.tick)
beat.unref()

function flushLog (): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym]
  try { stream?.flushSync?.() } catch {}
}

let server: AppServer
try {
  server = await AppServer.start(data.options, log)
} catch (err) {
  const e = err as FerryError
  post({ op: 'failed', code: e.code ?? 'FERRY_ERR_APP_LISTEN', message: e.message ?? String(err) })
  flushLog()
  process.exit(1)
}
// the counters go to shared memory as well, where the main thread reads them (even after this
// thread is gone); with one mount its figures are the server's (AppServer.onRequestDone)
server.metrics.mirror = data.counters.subarray(0, MIRROR_CELLS)
if (server.mounts.length > 1) {
  server.mounts.forEach((m, i) => { m.metrics.mirror = data.counters.subarray((i + 1) * MIRROR_CELLS, (i + 2) * MIRROR_CELLS) })
}
post({ op: 'listening', addresses: server.addresses, threadId, mounts: server.mounts.map((m) => m.label) })

port.on('message', (m: ToThread) => {
  if (m.op === 'stats') {
    post({ op: 'stats', seq: m.seq, gauges: gaugesOf(server) })
    return
  }
  if (m.op === 'shutdown') {
    const done = server.shutdown()
    // shutdown() closed the listeners before its first await: the addresses are free now
    post({ op: 'unbound' })
    done.then((drained) => {
      clearInterval(beat)
      post({ op: 'stopped', drained })
      flushLog()
      port.close()
    }, (err: unknown) => {
      log.error({ err }, 'direct thread shutdown failed')
      flushLog()
      process.exit(1)
    })
  }
})
