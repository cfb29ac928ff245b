/**
 * `--stats <addr>`: an HTTP listener serving Prometheus text at /metrics (uWSGI's stats
 * server, PHP-FPM's pm.status_path). Figures: requests by status, in flight, queue depth,
 * threads and busy threads, the handler-time histogram, native connections and streams.
 */
import { unlinkSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Address, formatAddress, type Session } from '@ferry/protocol'
import { BUCKETS, Metrics } from './metrics.js'
import { CgiRunner } from './cgi.js'
import type { DirectFigures, DirectThreads } from './direct.js'
import { mountInflight, mountQueued } from './direct-messages.js'
import type { Mount } from './mounts.js'
import { Pool } from './pool.js'

export interface StatsSource {
  readonly metrics: Metrics
  readonly mounts: Mount[]
  readonly sessions: Set<Session>
  readonly draining: number
  /** --direct's threads: their figures are added to the node's. */
  readonly direct?: DirectThreads | null
}

/** A mount's figures in the --direct threads (summed over them), by mount label. */
interface DirectMount { metrics: Metrics, inflight: number, queued: number }

export interface StatsServer {
  text: string
  close (): Promise<void>
}

export function renderMetrics (src: StatsSource, direct: DirectFigures | null = null): string {
  let m = src.metrics
  const byMount = new Map<string, DirectMount>()
  if (direct !== null) {
    // the node's counters are its pool's and its direct threads' together
    m = new Metrics()
    m.add(src.metrics)
    m.add(direct.metrics)
    for (const [label, metrics] of direct.mounts) byMount.set(label, { metrics, inflight: 0, queued: 0 })
    for (const t of direct.threads) {
      for (const x of t.mounts) {
        let d = byMount.get(x.label)
        if (d === undefined) byMount.set(x.label, d = { metrics: new Metrics(), inflight: 0, queued: 0 })
        d.inflight += x.inflight
        d.queued += x.queued
      }
    }
  }
  // the unlabelled figures are the sums over every fetch mount's current pool
  const pools = src.mounts.map((x) => x.dispatcher).filter((d): d is Pool => d instanceof Pool)
  const sum = (f: (p: Pool) => number): number => pools.reduce((a, q) => a + f(q), 0)
  const counters: Record<string, number> = {}
  for (const q of pools) for (const [k, v] of Object.entries(q.counters)) counters[k] = (counters[k] ?? 0) + v
  if (direct !== null) for (const [k, v] of Object.entries(direct.events)) counters[k] = (counters[k] ?? 0) + v
  const p = { inflight: sum((q) => q.inflight), queued: sum((q) => q.queued), threads: sum((q) => q.threads), busyThreads: sum((q) => q.busyThreads), counters }
  for (const t of direct?.threads ?? []) {
    p.inflight += t.inflight
    p.queued += t.queued
  }
  const lines: string[] = []
  const metric = (name: string, type: string, help: string): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
  }
  metric('ferry_app_requests_total', 'counter', 'Requests answered, by HTTP status.')
  for (const [status, n] of [...m.byStatus].sort((a, b) => a[0] - b[0])) lines.push(`ferry_app_requests_total{status="${status}"} ${n}`)
  metric('ferry_app_requests_in_flight', 'gauge', 'Requests running in a worker now.')
  lines.push(`ferry_app_requests_in_flight ${p.inflight}`)
  metric('ferry_app_queue_depth', 'gauge', 'Requests waiting for a worker (bounded by --max-queue).')
  lines.push(`ferry_app_queue_depth ${p.queued}`)
  metric('ferry_app_threads', 'gauge', 'Worker threads in the current pool.')
  lines.push(`ferry_app_threads ${p.threads}`)
  metric('ferry_app_threads_busy', 'gauge', 'Worker threads with at least one request in flight.')
  lines.push(`ferry_app_threads_busy ${p.busyThreads}`)
  metric('ferry_app_pool_utilization', 'gauge', 'Busy threads / threads.')
  lines.push(`ferry_app_pool_utilization ${p.threads === 0 ? 0 : p.busyThreads / p.threads}`)
  metric('ferry_app_pools_draining', 'gauge', 'Old pools still finishing requests after a reload.')
  lines.push(`ferry_app_pools_draining ${src.draining}`)
  metric('ferry_app_workers_events_total', 'counter', 'Worker events in the current pool.')
  for (const [k, v] of Object.entries(p.counters)) lines.push(`ferry_app_workers_events_total{event="${k}"} ${v}`)
  metric('ferry_app_request_duration_seconds', 'histogram', 'Time from request head to response end, seconds.')
  let cum = 0
  for (let i = 0; i < BUCKETS.length; i++) {
    cum += m.buckets[i]!
    lines.push(`ferry_app_request_duration_seconds_bucket{le="${BUCKETS[i]}"} ${cum}`)
  }
  lines.push(`ferry_app_request_duration_seconds_bucket{le="+Inf"} ${m.count}`)
  lines.push(`ferry_app_request_duration_seconds_sum ${m.sumSeconds}`)
  lines.push(`ferry_app_request_duration_seconds_count ${m.count}`)
  mountMetrics(src.mounts, src.mounts.length === 1 ? m : null, byMount, metric, lines)
  const threadStreams = (direct?.threads ?? []).flatMap((t) => t.streams)
  metric('ferry_app_native_connections', 'gauge', 'Open native ferry connections (the --direct threads\' included).')
  lines.push(`ferry_app_native_connections ${src.sessions.size + threadStreams.length}`)
  metric('ferry_app_native_streams', 'gauge', 'Open streams per native connection.')
  let i = 0
  for (const s of src.sessions) lines.push(`ferry_app_native_streams{connection="${i++}"} ${s.openStreams}`)
  for (const n of threadStreams) lines.push(`ferry_app_native_streams{connection="${i++}"} ${n}`)
  if (direct !== null) {
    metric('ferry_app_direct_threads', 'gauge', 'Running --direct threads (each serves its own native connections).')
    lines.push(`ferry_app_direct_threads ${direct.live}`)
    metric('ferry_app_direct_events_total', 'counter', '--direct threads: starts, crashes, stuck ones terminated, failed starts, recycled after --max-uncaught.')
    for (const [k, v] of Object.entries(direct.counters)) lines.push(`ferry_app_direct_events_total{event="${k}"} ${v}`)
  }
  return `${lines.join('\n')}\n`
}

/** The same figures per mount, with a `mount` label (the prefix, '/' for the root mount). */
function mountMetrics (mounts: Mount[], only: Metrics | null, direct: Map<string, DirectMount>, metric: (name: string, type: string, help: string) => void, lines: string[]): void {
  const sorted = [...mounts].sort((a, b) => a.label < b.label ? -1 : 1)
  // with a single mount the server-wide counters are that mount's (see AppServer.onRequestDone)
  const figures = (m: Mount): Metrics => {
    if (only !== null) return only
    const d = direct.get(m.label)
    if (d === undefined) return m.metrics
    const sum = new Metrics()
    sum.add(m.metrics)
    sum.add(d.metrics)
    return sum
  }
  const extra = (m: Mount, k: 'inflight' | 'queued'): number => direct.get(m.label)?.[k] ?? 0
  const q = (m: Mount): string => `mount="${m.label.replace(/["\\\n]/g, '_')}"`
  metric('ferry_app_mount_requests_total', 'counter', 'Requests answered, by mount and HTTP status.')
  for (const m of sorted) {
    for (const [status, n] of [...figures(m).byStatus].sort((a, b) => a[0] - b[0])) lines.push(`ferry_app_mount_requests_total{${q(m)},status="${status}"} ${n}`)
  }
  metric('ferry_app_mount_request_duration_seconds_sum', 'counter', 'Sum of request durations per mount, seconds.')
  for (const m of sorted) lines.push(`ferry_app_mount_request_duration_seconds_sum{${q(m)}} ${figures(m).sumSeconds}`)
  metric('ferry_app_mount_in_flight', 'gauge', 'Requests running per mount (fetch: in a worker; CGI: programs running).')
  for (const m of sorted) lines.push(`ferry_app_mount_in_flight{${q(m)}} ${mountInflight(m.dispatcher) + extra(m, 'inflight')}`)
  metric('ferry_app_mount_queue_depth', 'gauge', 'Requests waiting per mount.')
  for (const m of sorted) lines.push(`ferry_app_mount_queue_depth{${q(m)}} ${mountQueued(m.dispatcher) + extra(m, 'queued')}`)
  metric('ferry_app_mount_threads', 'gauge', 'Worker threads per fetch mount.')
  for (const m of sorted) if (m.dispatcher instanceof Pool) lines.push(`ferry_app_mount_threads{${q(m)}} ${m.dispatcher.threads}`)
  metric('ferry_app_mount_threads_busy', 'gauge', 'Busy worker threads per fetch mount.')
  for (const m of sorted) if (m.dispatcher instanceof Pool) lines.push(`ferry_app_mount_threads_busy{${q(m)}} ${m.dispatcher.busyThreads}`)
  metric('ferry_app_mount_request_cost_microseconds', 'gauge', 'What a request costs a worker thread per fetch mount, µs of event-loop time, as the pool estimates it to choose threads (light requests are packed onto as few threads as their load needs); absent until known.')
  for (const m of sorted) {
    if (m.dispatcher instanceof Pool && m.dispatcher.costUs !== Infinity) lines.push(`ferry_app_mount_request_cost_microseconds{${q(m)}} ${Math.round(m.dispatcher.costUs * 10) / 10}`)
  }
  metric('ferry_app_mount_cgi_events_total', 'counter', 'CGI programs per mount: started, timed out (killed), failed to start, refused (busy).')
  for (const m of sorted) {
    if (m.dispatcher instanceof CgiRunner) for (const [k, v] of Object.entries(m.dispatcher.counters)) lines.push(`ferry_app_mount_cgi_events_total{${q(m)},event="${k}"} ${v}`)
  }
}

export async function startStats (address: Address, src: StatsSource): Promise<StatsServer> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) {
      const direct = src.direct ?? null
      ;(direct === null ? Promise.resolve(null) : direct.figures()).then((figures) => {
        const body = renderMetrics(src, figures)
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      }, (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' })
        res.end(`stats failed: ${String(err)}\n`)
      })
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' })
    res.end('not found: try /metrics\n')
  })
  if (address.kind === 'unix') {
    try { unlinkSync(address.path) } catch {}
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    if (address.kind === 'unix') server.listen(address.path, resolve)
    else server.listen(address.port, address.host, resolve)
  })
  const bound: Address = address.kind === 'unix' ? address : { kind: 'tcp', host: address.host, port: (server.address() as AddressInfo).port }
  return {
    text: formatAddress(bound),
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
