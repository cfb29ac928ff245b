/**
 * `--stats <addr>`: an HTTP listener serving Prometheus text at /metrics (uWSGI's stats
 * server, PHP-FPM's pm.status_path). Figures: requests by status, in flight, queue depth,
 * threads and busy threads, the handler-time histogram, native connections and streams.
 */
import { unlinkSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Address, formatAddress, type Session } from '@ferry/protocol'
import { BUCKETS, type Metrics } from './metrics.js'
import type { Pool } from './pool.js'

export interface StatsSource {
  readonly metrics: Metrics
  readonly pool: Pool
  readonly sessions: Set<Session>
  readonly draining: number
}

export interface StatsServer {
  text: string
  close (): Promise<void>
}

export function renderMetrics (src: StatsSource): string {
  const m = src.metrics
  const p = src.pool
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
  metric('ferry_app_native_connections', 'gauge', 'Open native ferry connections.')
  lines.push(`ferry_app_native_connections ${src.sessions.size}`)
  metric('ferry_app_native_streams', 'gauge', 'Open streams per native connection.')
  let i = 0
  for (const s of src.sessions) lines.push(`ferry_app_native_streams{connection="${i++}"} ${s.openStreams}`)
  return `${lines.join('\n')}\n`
}

export async function startStats (address: Address, src: StatsSource): Promise<StatsServer> {
  const server = http.createServer((req, res) => {
    if (req.url === '/metrics' || req.url?.startsWith('/metrics?')) {
      const body = renderMetrics(src)
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(body) })
      res.end(body)
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
