/**
 * Scenario 4 — handler faults: a handler that throws on 5% of requests, hangs on 1% and
 * crashes its worker on 1%, behind a front. Pass: exactly those fail (500, 504 past the
 * node's --timeout, 500), everything else succeeds, and the pool is back to its size
 * (--stats ferry_app_threads). Good-request throughput is compared with a fault-free run
 * of the same length (reported, not asserted: the shared box cannot hold it steady).
 * Threads run many requests at once (the default --concurrency 64): an async hang holds only
 * its own slot until --timeout, and the injected "crash" (an uncaught exception thrown from
 * the request's setImmediate) is attributed to its request by the worker's async context:
 * that request gets 500 FERRY_ERR_APP_UNCAUGHT and the thread goes on (--max-uncaught
 * recycles it gracefully after enough of them), so no thread dies and no other request on it
 * is touched. (Before, each crash ended its thread and the others were re-dispatched.)
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

/**
 * Whether an outcome is the one its kind calls for. (A hang answered 500
 * FERRY_ERR_APP_WORKER_CRASHED was tolerated while crashes killed threads: a hang could sit
 * on two dying threads. No thread dies now, so a hang must end in 504.)
 */
export function asExpected (o: Outcome): boolean {
  return o.status === EXPECTED[o.kind]
}

export interface FaultResult {
  report: ScenarioReport
  /** Outcomes whose status is not the one expected for their kind, as "kind status" → count. */
  unexpected: Record<string, number>
  byKind: Record<string, number>
  /** Hangs answered 500 (second crash) instead of 504. */
  hangCrashed: number
  /** x-ferry-error of the crash requests' answers → count. */
  crashCodes: Record<string, number>
  /** ferry_app_workers_events_total after the faulty run, by event. */
  events: Record<string, number>
  threadsAfter: number
  goodPerSecond: number
  goodPerSecondFaultFree: number
}

async function run (scale: FaultScale, withFaults: boolean): Promise<{ outcomes: Outcome[], seconds: number, threadsAfter: number, rss: RssSampler, sent: number, events: Record<string, number> }> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f4-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const stats = join(dir, 'stats.sock')
    const node = await startNode(c, dir, 'n1', ['--threads', String(scale.threads), '--timeout', '1', '--stats', `unix:${stats}`])
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`], ['--timeout', '10s'])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const next = (i: number): Req => {
      const kind = withFaults ? faultOf(i) : 'none'
      return { method: 'GET', path: `/fault?kind=${kind}`, kind }
    }
    // A hanging or crashing request holds its own client, not a load loop (see Load).
    const load = new Load(baseUrl(front), scale.connections, next, 30000, (r) => r.kind === 'hang' || r.kind === 'crash')
    await sleep(scale.durationMs)
    const res = await load.stop()
    // The pool replaces crashed and stuck workers: wait (bounded) for its full size.
    let threadsAfter = 0
    let text = ''
    for (let k = 0; k < 50; k++) {
      text = await getUnix(stats, '/metrics')
      threadsAfter = metric(text, 'ferry_app_threads')
      if (threadsAfter === scale.threads) break
      await sleep(100)
    }
    const events: Record<string, number> = {}
    for (const m of text.matchAll(/^ferry_app_workers_events_total\{event="(\w+)"\} (\d+)$/gm)) events[m[1]!] = Number(m[2])
    return { outcomes: res.outcomes, seconds: res.seconds, threadsAfter, rss, sent: res.sent, events }
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
    if (!asExpected(o)) {
      const k = `${o.kind} ${o.status} ${o.error ?? ''}`
      unexpected[k] = (unexpected[k] ?? 0) + 1
    }
  }
  const good = (r: { outcomes: Outcome[], seconds: number }): number => Math.round(r.outcomes.filter((o) => o.kind === 'none' && o.status === 200).length / r.seconds)
  const goodPerSecond = good(faulty)
  const goodPerSecondFaultFree = good(clean)
  const failed = (o: Outcome): boolean => !asExpected(o)
  const hangCrashed = faulty.outcomes.filter((o) => o.kind === 'hang' && o.status === 500).length
  const crashCodes: Record<string, number> = {}
  for (const o of faulty.outcomes) {
    if (o.kind !== 'crash') continue
    const code = String(o.headers['x-ferry-error'] ?? o.error ?? o.status)
    crashCodes[code] = (crashCodes[code] ?? 0) + 1
  }
  const ev = faulty.events
  const report = summarize('4 handler faults (5% throw, 1% hang, 1% crash)', `GET, ${scale.connections} conns, ${scale.durationMs / 1000} s, ${scale.threads} threads × concurrency 64, --timeout 1`,
    { outcomes: faulty.outcomes, sent: faulty.sent, seconds: faulty.seconds }, failed, faulty.rss,
    [`by kind: ${JSON.stringify(byKind)}`, `good req/s ${goodPerSecond} vs fault-free ${goodPerSecondFaultFree}`, `threads after: ${faulty.threadsAfter}/${scale.threads}`, `hangs answered 500 (second crash): ${hangCrashed}`,
      `crash answers: ${JSON.stringify(crashCodes)}`, `worker events: uncaught ${ev.uncaught ?? 0}, crashed ${ev.crashed ?? 0}, recycled ${ev.recycled ?? 0}, timed out ${ev.timedOut ?? 0}`],
    (o) => o.kind === 'none')
  report.failed = faulty.outcomes.filter((o) => o.status !== 200).length
  return { report, unexpected, byKind, hangCrashed, crashCodes, events: ev, threadsAfter: faulty.threadsAfter, goodPerSecond, goodPerSecondFaultFree }
}
