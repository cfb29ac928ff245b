/**
 * Scenario 1 — node killed: 3 app nodes behind a front under steady GET load; kill -9 one.
 * Pass: zero failed GETs (requests that got no response byte go to a healthy node), the
 * dead node is ejected, and re-admitted (and served again) when started at the same socket.
 */
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, describeFailures, Load, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export interface NodeKilledScale {
  connections: number
  /** Load before the kill, while the node is down, and after it is back (ms). */
  beforeMs: number
  downMs: number
  afterMs: number
}

export const SMALL: NodeKilledScale = { connections: 8, beforeMs: 1000, downMs: 1500, afterMs: 1500 }
export const FULL: NodeKilledScale = { connections: 32, beforeMs: 5000, downMs: 5000, afterMs: 5000 }

export interface NodeKilledResult {
  report: ScenarioReport
  failedDetail: string
  ejected: boolean
  readmitted: boolean
  /** Responses the restarted node served after re-admission. */
  servedByRestarted: number
}

export async function nodeKilled (scale: NodeKilledScale): Promise<NodeKilledResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f1-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const nodes = await Promise.all(['n1', 'n2', 'n3'].map((n) => startNode(c, dir, n, ['--threads', '1'])))
    const front = await startFront(c, ['n1', 'n2', 'n3'].map((n) => `unix:${join(dir, `${n}.sock`)}`), ['--health-interval', '200ms', '--fail-timeout', '1s', '--connect-timeout', '1s'])
    for (const [i, n] of nodes.entries()) rss.watch(`n${i + 1}`, n.pid)
    rss.watch('front', front.pid)
    const load = new Load(baseUrl(front), scale.connections, () => ({ method: 'GET', path: '/hello' }))
    await sleep(scale.beforeMs)
    nodes[1]!.proc.kill('SIGKILL')
    await nodes[1]!.exited
    const ejected = await front.waitForLog((l) => l.msg === 'upstream node ejected', 5000).then(() => true, () => false)
    await sleep(scale.downMs)
    const mark = load.outcomes.length
    const again = await startNode(c, dir, 'n2', ['--threads', '1'])
    rss.watch('n2 (restarted)', again.pid)
    const readmitted = await front.waitForLog((l) => l.msg === 'upstream node re-admitted', 10000).then(() => true, () => false)
    // Re-admitted is not yet served: on a loaded box the balancer's first pick of the new
    // node can come a while later. Wait (bounded) for its first answer, then load on.
    for (let i = mark, until = Date.now() + 10000; Date.now() < until; await sleep(50)) {
      while (i < load.outcomes.length && load.outcomes[i]!.body !== 'n2 v1') i++
      if (i < load.outcomes.length) break
    }
    await sleep(scale.afterMs)
    const res = await load.stop()
    const failed = (o: { status: number }): boolean => o.status !== 200
    const servedByRestarted = res.outcomes.slice(mark).filter((o) => o.body === 'n2 v1').length
    return {
      report: summarize('1 node killed (kill -9 one of 3)', `GET, ${scale.connections} conns, ${(scale.beforeMs + scale.downMs + scale.afterMs) / 1000} s + restart`, res, failed, rss,
        [`ejected: ${ejected}`, `re-admitted: ${readmitted}`, `served by restarted node: ${servedByRestarted}`]),
      failedDetail: describeFailures(res.outcomes, failed),
      ejected,
      readmitted,
      servedByRestarted
    }
  } finally {
    await c.run()
  }
}
