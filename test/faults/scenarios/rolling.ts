/**
 * Scenario 2 — rolling restart: SIGTERM and restart each of 3 nodes in turn under GET and
 * POST load. Pass: zero failed requests of either kind (GOAWAY drain; no RST on close).
 * Scenario 3 — hot reload: SIGHUP to an app node whose handler file changed, under load.
 * Pass: zero failed requests; responses switch to the new code.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, describeFailures, FAULT_APP, Load, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export interface RollingScale {
  connections: number
  /** Load between two restarts (ms). */
  settleMs: number
}

export const ROLLING_SMALL: RollingScale = { connections: 8, settleMs: 700 }
export const ROLLING_FULL: RollingScale = { connections: 32, settleMs: 3000 }

export interface RunResult {
  report: ScenarioReport
  failedDetail: string
  byKind: Record<string, number>
}

const POST_BODY = 'x'.repeat(2048)

function mixed (i: number): { method: 'GET' | 'POST', path: string, body?: string } {
  return i % 2 === 0 ? { method: 'GET', path: '/hello' } : { method: 'POST', path: '/post', body: POST_BODY }
}

function counts (outcomes: { kind: string }[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const o of outcomes) out[o.kind] = (out[o.kind] ?? 0) + 1
  return out
}

export async function rollingRestart (scale: RollingScale): Promise<RunResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f2-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const names = ['n1', 'n2', 'n3']
    const args = ['--threads', '1', '--graceful-timeout', '10']
    const nodes = await Promise.all(names.map((n) => startNode(c, dir, n, args)))
    const front = await startFront(c, names.map((n) => `unix:${join(dir, `${n}.sock`)}`), ['--health-interval', '200ms', '--fail-timeout', '1s'])
    for (const [i, n] of nodes.entries()) rss.watch(names[i]!, n.pid)
    rss.watch('front', front.pid)
    const load = new Load(baseUrl(front), scale.connections, mixed)
    await sleep(scale.settleMs)
    for (const [i, name] of names.entries()) {
      const code = await nodes[i]!.stop(15000)
      if (code !== 0) throw new Error(`${name} exited with ${code} on SIGTERM`)
      nodes[i] = await startNode(c, dir, name, args)
      rss.watch(`${name}'`, nodes[i]!.pid)
      await sleep(scale.settleMs)
    }
    const res = await load.stop()
    const failed = (o: { status: number }): boolean => o.status !== 200
    return {
      report: summarize('2 rolling restart (SIGTERM + restart 3 nodes in turn)', `GET + POST 2 KiB, ${scale.connections} conns, ${(scale.settleMs * 4 / 1000).toFixed(1)} s + 3 restarts`, res, failed, rss),
      failedDetail: describeFailures(res.outcomes, failed),
      byKind: counts(res.outcomes)
    }
  } finally {
    await c.run()
  }
}

export interface ReloadResult extends RunResult {
  reloaded: boolean
  before: number
  after: number
  /** Old-version answers that came after the first new-version one. */
  oldAfterNew: number
}

export async function hotReload (scale: RollingScale): Promise<ReloadResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f3-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const handler = join(dir, 'app.ts')
    copyFileSync(FAULT_APP, handler)
    const node = await startNode(c, dir, 'n1', ['--threads', '2', '--log-level', 'info'], {}, handler)
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const load = new Load(baseUrl(front), scale.connections, mixed)
    await sleep(scale.settleMs)
    writeFileSync(handler, readFileSync(handler, 'utf8').replace("const VERSION = 'v1'", "const VERSION = 'v2'"))
    node.proc.kill('SIGHUP')
    const reloaded = await node.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reloaded'), 20000).then(() => true, () => false)
    await sleep(scale.settleMs * 2)
    const res = await load.stop()
    const failed = (o: { status: number }): boolean => o.status !== 200
    const versions = res.outcomes.map((o) => (o.body.includes(' v2') ? 2 : o.body.includes(' v1') ? 1 : 0))
    const firstNew = versions.indexOf(2)
    // Requests in flight at the switch may still answer from the old pool: count v1 answers
    // sent well after the first v2 one (more than one round of in-flight requests later).
    const oldAfterNew = firstNew < 0 ? 0 : versions.slice(firstNew + scale.connections * 2).filter((v) => v === 1).length
    return {
      report: summarize('3 hot reload (SIGHUP, changed handler)', `GET + POST 2 KiB, ${scale.connections} conns, ${(scale.settleMs * 3 / 1000).toFixed(1)} s`, res, failed, rss,
        [`reloaded: ${reloaded}`, `v1 answers: ${versions.filter((v) => v === 1).length}, v2 answers: ${versions.filter((v) => v === 2).length}`]),
      failedDetail: describeFailures(res.outcomes, failed),
      byKind: counts(res.outcomes),
      reloaded,
      before: versions.filter((v) => v === 1).length,
      after: versions.filter((v) => v === 2).length,
      oldAfterNew
    }
  } finally {
    await c.run()
  }
}
