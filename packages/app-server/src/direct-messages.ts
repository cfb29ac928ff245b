/**
 * What the main thread and its `--direct` threads say to each other (direct.ts, direct-thread.ts),
 * and a thread's figures for `--stats` in a form that crosses threads (plain arrays and numbers).
 */
import { CgiRunner } from './cgi.js'
import type { Metrics } from './metrics.js'
import { Pool } from './pool.js'
import type { AppServerOptions } from './server.js'

export interface DirectThreadData {
  /** The thread's own server: handlers inline, its own addresses, no stats, no --direct. */
  options: AppServerOptions
  /** 1-based thread number (its addresses end in it). */
  index: number
  /** Int32Array over a SharedArrayBuffer: the heartbeat counter. */
  beat: Int32Array
  /** Heartbeat period, ms. */
  tick: number
}

export type ToThread = { op: 'stats', seq: number } | { op: 'shutdown' }

export type FromThread =
  | { op: 'listening', addresses: string[], threadId: number }
  | { op: 'failed', code: string, message: string }
  | { op: 'stats', seq: number, stats: ThreadStats }
  | { op: 'unbound' }
  | { op: 'stopped', drained: boolean }

export interface MetricsData {
  byStatus: [number, number][]
  buckets: number[]
  count: number
  sumSeconds: number
}

export interface MountStats {
  label: string
  metrics: MetricsData
  inflight: number
  queued: number
}

export interface ThreadStats {
  metrics: MetricsData
  inflight: number
  queued: number
  /** Open streams of each native connection. */
  streams: number[]
  mounts: MountStats[]
}

export function metricsData (m: Metrics): MetricsData {
  return { byStatus: [...m.byStatus], buckets: [...m.buckets], count: m.count, sumSeconds: m.sumSeconds }
}

/** Add `d` into `into` (counters of several threads summed). */
export function addMetrics (into: Metrics, d: MetricsData): void {
  for (const [status, n] of d.byStatus) into.byStatus.set(status, (into.byStatus.get(status) ?? 0) + n)
  for (let i = 0; i < into.buckets.length; i++) into.buckets[i]! += d.buckets[i] ?? 0
  into.count += d.count
  into.sumSeconds += d.sumSeconds
}

/** The figures of a thread's server (what its part of the node's /metrics is made of). */
export function snapshotOf (server: { metrics: Metrics, mounts: { label: string, metrics: Metrics, dispatcher: unknown }[], sessions: Set<{ openStreams: number }> }): ThreadStats {
  let inflight = 0
  let queued = 0
  const single = server.mounts.length === 1
  const mounts: MountStats[] = server.mounts.map((m) => {
    const d = m.dispatcher
    const mi = d instanceof Pool ? d.inflight : d instanceof CgiRunner ? d.running : 0
    const mq = d instanceof Pool ? d.queued : d instanceof CgiRunner ? d.queued : 0
    inflight += mi
    queued += mq
    // one mount: its figures are the server's (AppServer.onRequestDone counts them once)
    return { label: m.label, metrics: metricsData(single ? server.metrics : m.metrics), inflight: mi, queued: mq }
  })
  return { metrics: metricsData(server.metrics), inflight, queued, streams: [...server.sessions].map((s) => s.openStreams), mounts }
}
