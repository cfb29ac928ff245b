/**
 * Fault scenario 5 at test scale: 100 closed-loop connections for 3 s against a node that
 * serves ~150-200 req/s. Bounds asserted are generous (shared 2-core box): accepted p99
 * under 5 s, each process under 400 MiB RSS, 20 straight 200s within 2 s after the load.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { OVERLOAD_SMALL, overload } from './scenarios/overload.ts'

const RSS_BOUND_MIB = 400

test('overload: excess gets 503 + Retry-After, accepted p99 bounded, memory bounded, no crash, service back within 2 s', { timeout: 45000 }, async () => {
  const r = await overload(OVERLOAD_SMALL)
  assert.ok(r.accepted > 50, `requests were served (${r.accepted})`)
  assert.ok(r.rejected.length > 0, 'some requests were turned away')
  assert.deepEqual(r.other, {}, 'every answer is 200 or 503 with Retry-After')
  for (const o of r.rejected.slice(0, 50)) assert.equal(o.headers['retry-after'], '1')
  assert.ok(r.acceptedP99 < 5000, `accepted p99 ${r.acceptedP99} ms < 5000 ms`)
  for (const [name, mib] of Object.entries(r.report.peakRssMiB)) assert.ok(mib < RSS_BOUND_MIB, `${name} peak RSS ${mib} MiB < ${RSS_BOUND_MIB} MiB`)
  assert.equal(r.alive, true, 'front and node still running')
  assert.ok(r.recoveryMs >= 0, '20 straight 200s within 2 s after the load stopped')
})
