/**
 * Small statistics and timing helpers shared by the codec and end-to-end benches.
 */

export function median (values: readonly number[]): number {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Spread of the values around their median, as a fraction (max − min) / median. */
export function spread (values: readonly number[]): number {
  if (values.length < 2) return 0
  const m = median(values)
  if (m === 0) return 0
  return (Math.max(...values) - Math.min(...values)) / m
}

/** Keeps results alive so the optimizer cannot drop the work that produced them. */
export const sink: { value: unknown, count: number } = { value: null, count: 0 }

export function consume (v: unknown): void {
  sink.value = v
  sink.count++
}

export interface TimingOptions {
  /** Iterations per timed round. */
  iterations: number
  /** Timed rounds; the result is their median. */
  rounds: number
  /** Untimed iterations first (JIT warm-up). */
  warmup: number
}

export interface Timing {
  /** Median ns per operation over the rounds. */
  nsPerOp: number
  /** ns per operation of every round. */
  roundsNs: number[]
}

/** Times `fn` (one operation per call): warm-up, then `rounds` rounds of `iterations` calls. */
export function time (fn: () => unknown, options: TimingOptions): Timing {
  for (let i = 0; i < options.warmup; i++) consume(fn())
  const roundsNs: number[] = []
  for (let r = 0; r < options.rounds; r++) {
    const start = process.hrtime.bigint()
    let last: unknown
    for (let i = 0; i < options.iterations; i++) last = fn()
    const elapsed = Number(process.hrtime.bigint() - start)
    consume(last)
    roundsNs.push(elapsed / options.iterations)
  }
  return { nsPerOp: median(roundsNs), roundsNs }
}

/** Rounds to `digits` significant decimals for reports (keeps JSON readable). */
export function round (v: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(v * f) / f
}
