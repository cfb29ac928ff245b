/**
 * The fault suite's harness: start app nodes and a front as real `ferry` processes on temp
 * unix sockets / loopback tcp, drive closed-loop HTTP load with undici (keep-alive), record
 * every outcome and latency, and sample each process's peak RSS. Scenarios (scenarios/*.ts)
 * use it at a small scale from the tests and at the issue's scale from report.ts.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { type FerryProcess, rssKiB, startFerry, tempDir } from '../helpers/proc.ts'

export const FAULT_APP = new URL('./fixtures/fault-app.ts', import.meta.url).pathname

export interface Cleanup {
  add (fn: () => Promise<unknown> | unknown): void
  run (): Promise<void>
}

/** Cleanups run in reverse order; every scenario ends with run() in a finally. */
export function cleanup (): Cleanup {
  const fns: Array<() => Promise<unknown> | unknown> = []
  return {
    add: (fn) => { fns.push(fn) },
    run: async () => {
      for (const fn of fns.reverse()) {
        try { await fn() } catch {}
      }
    }
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** An app node on unix:<dir>/<name>.sock running the fault handler. */
export async function startNode (c: Cleanup, dir: string, name: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}, handler = FAULT_APP): Promise<FerryProcess> {
  const p = await startFerry(['app', handler, '--listen', `unix:${join(dir, `${name}.sock`)}`, '--log-level', 'warn', ...extra], {
    env: { FERRY_FAULT_NODE: name, ...env },
    ready: (l) => l.msg === 'listening',
    logFile: join(dir, `${name}.log`)
  })
  c.add(() => p.stop(3000))
  return p
}

export async function startFront (c: Cleanup, upstreams: string[], extra: string[] = []): Promise<FerryProcess> {
  const args = ['front', '--listen', '127.0.0.1:0', '--no-access-log']
  for (const u of upstreams) args.push('--upstream', u)
  const logs = tempDir('ferry-front-log-')
  c.add(() => logs.cleanup())
  const p = await startFerry([...args, ...extra], { logFile: join(logs.dir, 'front.log') })
  c.add(() => p.stop(3000))
  return p
}

export function baseUrl (p: FerryProcess): string {
  return `http://${p.addresses[0]!.replace('tcp://', '')}`
}

export interface Req {
  method: 'GET' | 'POST'
  path: string
  body?: string
  /** Label for the per-kind counts (default method). */
  kind?: string
}

export interface Outcome {
  kind: string
  status: number
  /** Error code/message when no response came. */
  error: string | null
  body: string
  ms: number
  headers: Record<string, string | string[] | undefined>
}

export interface LoadResult {
  outcomes: Outcome[]
  sent: number
  seconds: number
}

/**
 * Closed-loop load: `connections` keep-alive connections, each sending the next request
 * from `next()` as soon as the previous answer ends, until stop(). A request for which
 * `detached(r)` is true goes out on a connection of its own and the loop does not wait for
 * it (a client whose request hangs is one client: it must not hold back the others' load).
 */
export class Load {
  #pool: Pool
  #side: Pool | null = null
  #running = true
  #loops: Promise<void>[] = []
  #pending = new Set<Promise<void>>()
  #started = performance.now()
  readonly outcomes: Outcome[] = []

  constructor (base: string, connections: number, next: (i: number) => Req, timeoutMs = 30000, detached?: (r: Req) => boolean) {
    const pool = new Pool(base, { connections, pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30000 })
    this.#pool = pool
    if (detached !== undefined) this.#side = new Pool(base, { pipelining: 1, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, keepAliveTimeout: 30000 })
    let i = 0
    for (let k = 0; k < connections; k++) {
      this.#loops.push((async () => {
        while (this.#running) {
          const r = next(i++)
          if (this.#side !== null && detached?.(r) === true) {
            const p: Promise<void> = this.#one(r, this.#side).then((o) => { this.outcomes.push(o); this.#pending.delete(p) })
            this.#pending.add(p)
            continue
          }
          this.outcomes.push(await this.#one(r, pool))
        }
      })())
    }
  }

  async #one (r: Req, pool: Pool): Promise<Outcome> {
    const t0 = performance.now()
    const kind = r.kind ?? r.method
    try {
      const res = await pool.request({ method: r.method, path: r.path, body: r.body, headers: r.body === undefined ? {} : { 'content-type': 'text/plain' } })
      const body = await res.body.text()
      return { kind, status: res.statusCode, error: null, body, ms: performance.now() - t0, headers: res.headers }
    } catch (err) {
      const e = err as { code?: string, message?: string }
      return { kind, status: 0, error: e.code ?? e.message ?? String(err), body: '', ms: performance.now() - t0, headers: {} }
    }
  }

  async stop (): Promise<LoadResult> {
    this.#running = false
    await Promise.all(this.#loops)
    const seconds = (performance.now() - this.#started) / 1000
    await Promise.all(this.#pending)
    await this.#pool.close()
    await this.#side?.close()
    return { outcomes: this.outcomes, sent: this.outcomes.length, seconds }
  }
}

/** CPU time (user + system, all threads) of a process so far, µs (/proc/<pid>/stat; USER_HZ 100). */
export function cpuUs (pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) * 10000
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return 0
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
}

/** Samples VmRSS of named processes every `everyMs`; peak() in MiB. */
export class RssSampler {
  #pids = new Map<string, number>()
  #peak = new Map<string, number>()
  #timer: NodeJS.Timeout

  constructor (everyMs = 100) {
    this.#timer = setInterval(() => { this.sample().catch(() => {}) }, everyMs)
  }

  watch (name: string, pid: number): void {
    this.#pids.set(name, pid)
    this.sample().catch(() => {})
  }

  async sample (): Promise<void> {
    for (const [name, pid] of this.#pids) {
      let kib = 0
      try { kib = await rssKiB(pid) } catch { continue } // exited
      if (kib > (this.#peak.get(name) ?? 0)) this.#peak.set(name, kib)
    }
  }

  /** Peak RSS per process, MiB (one decimal). */
  peaks (): Record<string, number> {
    const out: Record<string, number> = {}
    for (const [k, v] of this.#peak) out[k] = Math.round(v / 102.4) / 10
    return out
  }

  stop (): void {
    clearInterval(this.#timer)
  }
}

/** What every scenario reports for docs/reliability.md. */
export interface ScenarioReport {
  scenario: string
  load: string
  sent: number
  failed: number
  p99ms: number
  peakRssMiB: Record<string, number>
  notes: string[]
}

export function summarize (scenario: string, load: string, res: LoadResult, failed: (o: Outcome) => boolean, rss: RssSampler, notes: string[] = [], latencyOf: (o: Outcome) => boolean = (o) => !failed(o)): ScenarioReport {
  return {
    scenario,
    load,
    sent: res.sent,
    failed: res.outcomes.filter(failed).length,
    p99ms: Math.round(percentile(res.outcomes.filter(latencyOf).map((o) => o.ms), 99) * 10) / 10,
    peakRssMiB: rss.peaks(),
    notes
  }
}

/** A short description of failures (for assertion messages). */
export function describeFailures (outcomes: Outcome[], failed: (o: Outcome) => boolean): string {
  const counts = new Map<string, number>()
  for (const o of outcomes) {
    if (!failed(o)) continue
    const k = `${o.kind} ${o.status} ${o.error ?? o.body.slice(0, 200)}`
    counts.set(k, (counts.get(k) ?? 0) + 1)
  }
  return JSON.stringify([...counts])
}

/** GET a path over a unix socket (the app-server's --stats endpoint). */
export async function getUnix (socketPath: string, path: string): Promise<string> {
  const { request } = await import('node:http')
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve(body))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** One Prometheus sample value (first line that starts with `name`), NaN when absent. */
export function metric (text: string, name: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1))
  }
  return Number.NaN
}
