/**
 * Fault scenarios 2 (rolling restart) and 3 (hot reload) at test scale: 8 connections of
 * mixed GET and POST, well under a minute. Full scale: npm run reliability.
 *
 * POSTs: a POST whose body is already on its way when a node starts draining cannot be
 * replayed, so no stream may be refused in flight: the app-server drains in two phases (a
 * GOAWAY with the largest id, a PING, then the real last id), as HTTP/2 servers do.
 */
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { hotReload, ROLLING_SMALL, type RunResult, rollingRestart } from './scenarios/rolling.ts'

let rolling: RunResult

before(async () => {
  rolling = await rollingRestart(ROLLING_SMALL)
}, { timeout: 50000 })

function failedOf (kind: string): number {
  return rolling.report.failed === 0 ? 0 : JSON.parse(rolling.failedDetail).filter(([k]: [string]) => k.startsWith(`${kind} `)).reduce((n: number, [, c]: [string, number]) => n + c, 0)
}

test('rolling restart of 3 nodes (SIGTERM, restart) under GET + POST load: both kinds ran, zero failed GETs', () => {
  assert.ok((rolling.byKind.GET ?? 0) > 50 && (rolling.byKind.POST ?? 0) > 50, `both kinds ran: ${JSON.stringify(rolling.byKind)}`)
  assert.equal(failedOf('GET'), 0, `failed: ${rolling.failedDetail}`)
})

test('rolling restart: zero failed POSTs (two-phase GOAWAY: nothing in flight is refused)', () => {
  assert.equal(failedOf('POST'), 0, `failed: ${rolling.failedDetail}`)
})

test('SIGHUP with a changed handler under load: zero failures, answers switch to the new code', { timeout: 40000 }, async () => {
  const r = await hotReload(ROLLING_SMALL)
  assert.equal(r.reloaded, true, 'the node logged "reloaded"')
  assert.equal(r.report.failed, 0, `failed: ${r.failedDetail}`)
  assert.ok(r.before > 0, 'the old code answered before the reload')
  assert.ok(r.after > 0, 'the new code answers after the reload')
  assert.equal(r.oldAfterNew, 0, 'no old-code answers long after the switch')
})
