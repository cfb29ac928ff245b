/**
 * Counters for the stats endpoint: requests by status, a handler-time histogram (time from
 * the request head to the response's end, as the app-server sees it). O(1) per request.
 */

/** Histogram bucket upper bounds, seconds (Prometheus `le`). */
export const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const

export class Metrics {
  readonly byStatus = new Map<number, number>()
  readonly buckets = new Array<number>(BUCKETS.length).fill(0)
  count = 0
  sumSeconds = 0

  requestDone (status: number, ms: number): void {
    this.byStatus.set(status, (this.byStatus.get(status) ?? 0) + 1)
    const s = ms / 1000
    this.count++
    this.sumSeconds += s
    for (let i = 0; i < BUCKETS.length; i++) {
      if (s <= BUCKETS[i]!) {
        this.buckets[i]!++
        break
      }
    }
  }
}
