/**
 * Where ferry's JSON log lines go (the app's and the front's main thread, each worker
 * thread): stdout, written asynchronously in batches — lines are gathered up to 4 KiB and
 * written together, and whatever is gathered is written within FLUSH_MS. pino's default
 * destination writes each line on its own through libuv's thread pool: when a few requests
 * in a hundred fail (or an access log runs at a moderate rate), every line costs a pool round
 * trip and the wake-ups of two threads (measured with 5 % of requests throwing: the app's CPU
 * per request 36–41 → 28–38 µs). Whoever announces something a script waits for (the
 * "listening" line) flushes after it; the process's exit hook and a worker thread that ends
 * write what is left synchronously.
 */
import pino from 'pino'

const MIN_LENGTH = 4096
const FLUSH_MS = 100

export function logDestination (fd = 1): ReturnType<typeof pino.destination> {
  const dest = pino.destination({ fd, sync: false, minLength: MIN_LENGTH })
  let pending = false
  const write = dest.write.bind(dest)
  dest.write = (line: string): boolean => {
    pending = true
    return write(line)
  }
  setInterval(() => {
    if (!pending) return
    pending = false
    try {
      dest.flush()
    } catch {
      // stdout is gone: nothing to write to
    }
  }, FLUSH_MS).unref()
  return dest
}
