/**
 * Scenario 4 — handler faults: a handler that throws on 5% of requests, hangs on 1% and
 * crashes its worker on 1%, behind a front. Pass: exactly those fail (500, 504 past the
 * node's --timeout, 500), everything else succeeds, and the pool is back to its size
 * (--stats ferry_app_threads). Good-request throughput is compared with a fault-free run
 * of the same length (reported, not asserted: the shared box cannot hold it steady).
 * Threads run one request at a time (--concurrency 1): a worker crash then fails only the
 * request that crashed it; with more per thread it fails every request on that thread.
 */
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, getUnix, Load, metric, type Outcome, type Req, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export interface FaultScale {
  connections: number
  durationMs: number
  threads: number
}

export const FAULTS_SMALL: FaultScale = { connections: 8, durationMs: 3000, threads: 4 }
export const FAULTS_FULL: FaultScale = { connections: 32, durationMs: 10000, threads: 4 }

/** The fault of request i: 5 in 100 throw, 1 hangs, 1 crashes its worker. */
export function faultOf (i: number): string {
  const k = (i * 37) % 100
  return k < 5 ? 'throw' : k === 5 ? 'hang' : k === 6 ? 'crash' : 'none'
}

export const EXPECTED: Record<string, number> = { throw: 500, hang: 504, crash: 500, none: 200 }

export interface FaultResult {
  report: ScenarioReport
  /** Outcomes whose status is not the one expected for their kind, as "kind status" → count. */
  unexpected: Record<string, number>
  byKind: Record<string, number>
  threadsAfter: number
  goodPerSecond: number
  goodPerSecondFaultFree: number
}

async function run (scale: FaultScale, withFaults: boolean): Promise<{ outcomes: Outcome[], seconds: number, threadsAfter: number, rss: RssSampler, sent: number }> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f4-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const stats = join(dir, 'stats.sock')
    const node = await startNode(c, dir, 'n1', ['--threads', String(scale.threads), '--concurrency', '1', '--timeout', '1', '--stats', `unix:${stats}`])
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`], ['--timeout', '10s'])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const next = (i: number): Req => {
      const kind = withFaults ? faultOf(i) : 'none'
      return { method: 'GET', path: `/fault?kind=${kind}`, kind }
    }
    const load = new Load(baseUrl(front), scale.connections, next)
    await sleep(scale.durationMs)
    const res = await load.stop()
    // The pool replaces crashed and stuck workers: wait (bounded) for its full size.
    let threadsAfter = 0
    for (let k = 0; k < 50; k++) {
      threadsAfter = metric(await getUnix(stats, '/metrics'), 'ferry_app_threads')
      if (threadsAfter === scale.threads) break
      await sleep(100)
    }
    return { outcomes: res.outcomes, seconds: res.seconds, threadsAfter, rss, sent: res.sent }
  } finally {
    await c.run()
  }
}

export async function handlerFaults (scale: FaultScale): Promise<FaultResult> {
  const clean = await run(scale, false)
  const faulty = await run(scale, true)
  const unexpected: Record<string, number> = {}
  const byKind: Record<string, number> = {}
  for (const o of faulty.outcomes) {
    byKind[o.kind] = (byKind[o.kind] ?? 0) + 1
    if (o.status !== EXPECTED[o.kind]) {
      const k = `${o.kind} ${o.status} ${o.error ?? ''}`
      unexpected[k] = (unexpected[k] ?? 0) + 1
    }
  }
  const good = (r: { outcomes: Outcome[], seconds: number }): number => Math.round(r.outcomes.filter((o) => o.kind === 'none' && o.status === 200).length / r.seconds)
  const goodPerSecond = good(faulty)
  const goodPerSecondFaultFree = good(clean)
  const failed = (o: Outcome): boolean => o.status !== EXPECTED[o.kind]
  const report = summarize('4 handler faults (5% throw, 1% hang, 1% crash)', `GET, ${scale.connections} conns, ${scale.durationMs / 1000} s, ${scale.threads} threads × concurrency 1, --timeout 1`,
    { outcomes: faulty.outcomes, sent: faulty.sent, seconds: faulty.seconds }, failed, faulty.rss,
    [`by kind: ${JSON.stringify(byKind)}`, `good req/s ${goodPerSecond} vs fault-free ${goodPerSecondFaultFree}`, `threads after: ${faulty.threadsAfter}/${scale.threads}`],
    (o) => o.kind === 'none')
  report.failed = faulty.outcomes.filter((o) => o.status !== 200).length
  return { report, unexpected, byKind, threadsAfter: faulty.threadsAfter, goodPerSecond, goodPerSecondFaultFree }
}
