/**
 * What a worker logs for a request's error. Formatting a stack is the expensive part of a
 * failed request (V8 builds the string on first `.stack` read; with source maps on — tsx
 * turns them on — every frame is mapped back to its source: tens of µs per error), and an
 * error storm is exactly when a server needs its CPU. So the same error (name and message)
 * logs its full stack once per --log-stack-interval per thread; repeats within the interval
 * log type, message and code, and name the request whose line carries the stack. Every
 * failed request still gets its own line with its reqId. Interval 0 = every stack.
 */

/** ms; the default of --log-stack-interval. */
export const DEFAULT_LOG_STACK_INTERVAL = 1000

/** Distinct errors remembered per thread; past it the memory starts over (bounded). */
const MAX_KEYS = 1000

interface Seen {
  at: number
  reqId: string
}

export class ErrorLog {
  readonly #intervalMs: number
  #seen = new Map<string, Seen>()

  constructor (intervalMs: number) {
    this.#intervalMs = intervalMs
  }

  /** The value to log as `err` for an error of request `reqId`. */
  err (err: unknown, reqId: string): unknown {
    if (this.#intervalMs === 0 || !(err instanceof Error)) return err
    const key = `${err.name}\n${err.message}`
    const now = Date.now()
    const seen = this.#seen.get(key)
    if (seen !== undefined && now - seen.at < this.#intervalMs) {
      return omitted(err, `(stack omitted: the same error was logged with its stack for request ${seen.reqId} within --log-stack-interval)`)
    }
    if (seen === undefined && this.#seen.size >= MAX_KEYS) this.#seen.clear()
    this.#seen.set(key, { at: now, reqId })
    return err
  }
}

/**
 * What pino's err serializer makes of `err` — type (from the non-enumerable `constructor`),
 * message (with its causes'), the error's own enumerable fields (code…) — with `stack`
 * replaced by `note`. A plain object of one shape: `Object.create(err)` would turn every
 * failed request's error into a prototype (V8 re-shapes an object the first time it becomes
 * one) and send the serializer's loads and for-in through a new prototype chain each time —
 * IC misses and megamorphic lookups that cost more than the rest of the error line.
 */
function omitted (err: Error, note: string): object {
  const out: Record<string, unknown> = { message: err.message, stack: note }
  for (const key of Object.keys(err)) if (key !== 'stack' && key !== 'message') out[key] = (err as unknown as Record<string, unknown>)[key]
  Object.defineProperty(out, 'constructor', { value: err.constructor })
  if (err.cause !== undefined) Object.defineProperty(out, 'cause', { value: err.cause })
  return out
}
