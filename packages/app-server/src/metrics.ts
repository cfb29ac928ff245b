/**
 * Counters for the stats endpoint: requests by status, a handler-time histogram (time from
 * the request head to the response's end, as the app-server sees it). O(1) per request.
 *
 * A `--direct` thread's counters are also written to shared memory (`mirror`), which the main
 * thread reads for /metrics: nothing is lost when the thread dies, and a stuck thread's
 * figures are still there.
 */

/** Histogram bucket upper bounds, seconds (Prometheus `le`). */
export const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const

/** A mirror's layout: count, sum of seconds, the buckets, then one cell per status 0..999. */
const STATUS_BASE = 2 + BUCKETS.length
const STATUSES = 1000
/** Float64 cells of one mirror. */
export const MIRROR_CELLS = STATUS_BASE + STATUSES

export class Metrics {
  readonly byStatus = new Map<number, number>()
  readonly buckets = new Array<number>(BUCKETS.length).fill(0)
  count = 0
  sumSeconds = 0
  /** Shared copy of these counters (one writer: this thread), or null. */
  mirror: Float64Array | null = null

  requestDone (status: number, ms: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1)
    const s = ms / 1000
    this.count++
    this.sumSeconds += s
    let bucket = -1
    for (let i = 0; i < BUCKETS.length; i++) {
      if (s <= BUCKETS[i]!) {
        this.buckets[i]!++
        bucket = i
        break
      }
    }
    const m = this.mirror
    if (m !== null) {
      m[0] = this.count
      m[1] = this.sumSeconds
      if (bucket >= 0) m[2 + bucket]!++
      m[STATUS_BASE + (status >= 0 && status < STATUSES ? status : 0)]!++
    }
  }

  /** Add the counters a mirror holds (another thread's) to these. */
  addMirror (m: Float64Array): void {
    this.count += m[0]!
    this.sumSeconds += m[1]!
    for (let i = 0; i < BUCKETS.length; i++) this.buckets[i]! += m[2 + i]!
    for (let s = 0; s < STATUSES; s++) {
      const n = m[STATUS_BASE + s]!
      if (n !== 0) this.byStatus.set(s, (this.byStatus.get(s) ?? 0) + n)
    }
  }

  /** Add another Metrics' counters to these. */
  add (o: Metrics): void {
    this.count += o.count
    this.sumSeconds += o.sumSeconds
    for (let i = 0; i < BUCKETS.length; i++) this.buckets[i]! += o.buckets[i]!
    for (const [s, n] of o.byStatus) this.byStatus.set(s, (this.byStatus.get(s) ?? 0) + n)
  }
}
