/**
 * Scenario 5 — overload: offered load ~10× what one node can serve. Closed-loop clients
 * (many more connections than the node has queue) against a node with one thread, one
 * request at a time, 5 ms of CPU per request and --max-queue 16. Pass: the excess gets 503
 * with Retry-After at once, accepted requests' p99 stays bounded, memory stays bounded, no
 * process dies, and full service returns within 2 s after the load stops.
 */
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, Load, type Outcome, percentile, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export interface OverloadScale {
  connections: number
  durationMs: number
}

export const OVERLOAD_SMALL: OverloadScale = { connections: 100, durationMs: 3000 }
export const OVERLOAD_FULL: OverloadScale = { connections: 200, durationMs: 10000 }

export interface OverloadResult {
  report: ScenarioReport
  accepted: number
  rejected: Outcome[]
  /** Answers that were neither 200 nor 503 + Retry-After. */
  other: Record<string, number>
  acceptedP99: number
  rejectedP99: number
  capacityPerSecond: number
  offeredPerSecond: number
  alive: boolean
  /** ms from the end of the load to the first of 20 straight 200s; -1 if not within 2 s. */
  recoveryMs: number
}

export async function overload (scale: OverloadScale): Promise<OverloadResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f5-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const node = await startNode(c, dir, 'n1', ['--threads', '1', '--concurrency', '1', '--max-queue', '16'])
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`], ['--retry-after', '1'])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    // Capacity first: one connection, the same work.
    const solo = new Load(baseUrl(front), 1, () => ({ method: 'GET', path: '/cpu?ms=5' }))
    await sleep(1000)
    const soloRes = await solo.stop()
    const capacityPerSecond = Math.round(soloRes.outcomes.filter((o) => o.status === 200).length / soloRes.seconds)
    const load = new Load(baseUrl(front), scale.connections, () => ({ method: 'GET', path: '/cpu?ms=5' }), 20000)
    await sleep(scale.durationMs)
    const res = await load.stop()
    const after = performance.now()
    let recoveryMs = -1
    const probe = new Load(baseUrl(front), 1, () => ({ method: 'GET', path: '/cpu?ms=5' }))
    for (;;) {
      await sleep(20)
      const o = probe.outcomes
      let run = 0
      for (let i = o.length - 1; i >= 0 && o[i]!.status === 200; i--) run++
      if (run >= 20) {
        recoveryMs = Math.round(performance.now() - after)
        break
      }
      if (performance.now() - after > 2000) break
    }
    await probe.stop()
    const alive = node.proc.exitCode === null && node.proc.signalCode === null && front.proc.exitCode === null && front.proc.signalCode === null
    const accepted = res.outcomes.filter((o) => o.status === 200)
    const rejected = res.outcomes.filter((o) => o.status === 503 && o.headers['retry-after'] !== undefined)
    const other: Record<string, number> = {}
    for (const o of res.outcomes) {
      if (o.status === 200 || (o.status === 503 && o.headers['retry-after'] !== undefined)) continue
      const k = `${o.status} ${o.error ?? o.body.slice(0, 120)}`
      other[k] = (other[k] ?? 0) + 1
    }
    const acceptedP99 = Math.round(percentile(accepted.map((o) => o.ms), 99))
    const rejectedP99 = Math.round(percentile(rejected.map((o) => o.ms), 99))
    const offeredPerSecond = Math.round(res.sent / res.seconds)
    const report = summarize('5 overload (~10× capacity)', `GET 5 ms CPU, ${scale.connections} conns closed loop, ${scale.durationMs / 1000} s; node: 1 thread, --max-queue 16`, res,
      (o) => o.status !== 200 && !(o.status === 503 && o.headers['retry-after'] !== undefined), rss,
      [`capacity ≈ ${capacityPerSecond} req/s; offered ${offeredPerSecond} req/s`, `accepted ${accepted.length}, 503+Retry-After ${rejected.length} (p99 ${rejectedP99} ms)`, `full service again after ${recoveryMs} ms`],
      (o) => o.status === 200)
    return { report, accepted: accepted.length, rejected, other, acceptedP99, rejectedP99, capacityPerSecond, offeredPerSecond, alive, recoveryMs }
  } finally {
    await c.run()
  }
}
