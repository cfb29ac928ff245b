/**
 * Fault scenario 7 at test scale: 8 hostile connections at a time for 3 s (seeded: the
 * inputs replay), alternating the node's unix and tcp listeners, beside good traffic from a
 * front; then known-bad inputs one by one, each closed and logged with its code.
 * Found and fixed here: a connection that half-closed before its first byte was never
 * closed by the node (listener.ts waited for a first byte that could not come).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HOSTILE_SMALL, hostileFrames } from './scenarios/hostile-frames.ts'

const APP_BOUND_MIB = 400

test('seeded hostile native + uwsgi input on unix and tcp: node up, memory bounded, every connection closed with a logged code, good traffic unaffected', { timeout: 45000 }, async () => {
  const r = await hostileFrames(HOSTILE_SMALL)
  assert.ok(r.attacks > 200, `hostile connections made: ${r.attacks} ${JSON.stringify(r.byKind)}`)
  assert.equal(r.alive, true, 'the node is still running')
  assert.deepEqual(r.notClosed.map((a) => `${a.kind} ${a.hex}`), [], 'every hostile connection was closed by the node')
  assert.ok(Object.keys(r.codes).some((c) => c.startsWith('FERRY_ERR_UWSGI_')) && Object.keys(r.codes).some((c) => c.startsWith('FERRY_ERR_FRAME_')), `native and uwsgi errors logged: ${JSON.stringify(r.codes)}`)
  assert.deepEqual(r.uncoded, [], 'every warn/error line of the node has a FERRY_ERR_ code')
  assert.ok(r.appPeakMiB < APP_BOUND_MIB, `node peak RSS ${r.appPeakMiB} MiB < ${APP_BOUND_MIB} MiB`)
  assert.ok(r.normalSent > 100, `good traffic ran (${r.normalSent})`)
  assert.equal(r.report.failed, 0, `good requests failed: ${r.failedDetail}`)
  assert.equal(r.exact.length, 8)
  for (const e of r.exact) assert.deepEqual(e, { ...e, closed: true, logged: true }, `${e.code} on ${e.listener}`)
})
