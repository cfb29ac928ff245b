/**
 * Where ferry's JSON log lines go (the app's and the front's main thread, each worker
 * thread): stdout, written asynchronously in batches — lines are gathered here up to
 * BATCH_LENGTH characters and handed to pino's destination (sonic-boom) as one string, and
 * whatever is gathered goes within FLUSH_MS (a timer armed by the first line of a batch, so
 * an idle thread is not woken for nothing: a periodic flush woke every thread of every node
 * ten times a second, ≈ 1 % of a core per idle node with two workers). pino's default
 * destination writes each line on its own through libuv's thread pool: when a few requests in
 * a hundred fail (or an access log runs at a moderate rate), every line costs a pool round
 * trip and the wake-ups of two threads (measured with 5 % of requests throwing: the app's CPU
 * per request 36–41 → 28–38 µs). The lines are gathered here rather than by sonic-boom's own
 * minLength because sonic-boom appends each line to its pending string and then measures that
 * string's UTF-8 length — flattening a string that grows to the batch size, once per line: in
 * a worker thread under load that was ≈ 8 µs of every error line. Whoever announces something a
 * script waits for (the "listening" line) flushes after it; the process's exit hook and a
 * worker thread that ends write what is left synchronously (flush, flushSync and end take
 * the gathered lines first).
 */
import pino from 'pino'

/** Characters gathered before they are written (one write of ≈ 16 KiB: sonic-boom's largest). */
const BATCH_LENGTH = 16 * 1024 - 512
const FLUSH_MS = 100

type Destination = ReturnType<typeof pino.destination>

export function logDestination (fd = 1): Destination {
  // minLength 1: each batch is written when it is handed over (or after the write in
  // flight); not 0, with which sonic-boom's flush(cb) calls back before a write in flight ends
  const dest = pino.destination({ fd, sync: false, minLength: 1 })
  const write = dest.write.bind(dest)
  let parts: string[] = []
  let length = 0
  let timer: NodeJS.Timeout | null = null
  const drain = (): void => {
    if (timer !== null) {
      clearTimeout(timer)
      timer = null
    }
    if (parts.length === 0) return
    const batch = parts.length === 1 ? parts[0]! : parts.join('')
    parts = []
    length = 0
    write(batch)
  }
  const onTimer = (): void => {
    timer = null
    try {
      drain()
    } catch {
      // stdout is gone: nothing to write to
    }
  }
  dest.write = (line: string): boolean => {
    parts.push(line)
    length += line.length
    if (length >= BATCH_LENGTH) drain()
    else if (timer === null) {
      timer = setTimeout(onTimer, FLUSH_MS)
      timer.unref()
    }
    return true
  }
  const flush = dest.flush.bind(dest)
  dest.flush = (cb?: (err?: Error) => unknown): void => {
    drain()
    flush(cb)
  }
  const flushSync = dest.flushSync.bind(dest)
  dest.flushSync = (): void => {
    drain()
    flushSync()
  }
  const end = dest.end.bind(dest)
  dest.end = (): void => {
    drain()
    end()
  }
  return dest
}

/**
 * Write what `log`'s stream still holds, synchronously (a thread about to end: its batched
 * lines would be lost with it). Errors are ignored: stdout may be gone.
 */
export function flushLogSync (log: pino.Logger): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym]
  try { stream?.flushSync?.() } catch {}
}

/**
 * The last words of a process: what `log` still holds, then one fatal line written
 * synchronously with the pid, `log`'s bindings (its base but pid and hostname, and its
 * children's) and `fields`, then exit(1) for the
 * supervisor. For an exception nothing handled — Node's own ending would print a bare stack
 * to stderr with no code and lose the batched lines.
 */
export function exitFatal (log: pino.Logger, fields: Record<string, unknown>, msg: string): never {
  flushLogSync(log)
  const last = pino({ level: 'fatal', base: { pid: process.pid, ...log.bindings() } }, pino.destination({ fd: 1, sync: true }))
  last.fatal(fields, msg)
  process.exit(1)
}
