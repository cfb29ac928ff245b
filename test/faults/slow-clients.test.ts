/**
 * Fault scenario 6 at test scale: 200 slowloris connections and 10 readers of a 20 MiB
 * response at 1 MiB/s for 4 s, beside 4 normal keep-alive connections. The front's peak RSS
 * must stay under 200 MiB. Measured on the 2-core box: ~118 MiB with the normal load alone,
 * ~154 MiB with 10 readers of 20 MiB and ~142 MiB with 10 readers of 60 MiB (it does not
 * grow with the response size); buffering the undelivered rest would add ~160 MiB.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SLOW_SMALL, slowClients } from './scenarios/slow-clients.ts'

const FRONT_BOUND_MIB = 200

test('slowloris + slow readers beside normal traffic: normal requests all served, readers progress, front memory bounded', { timeout: 45000 }, async () => {
  const r = await slowClients(SLOW_SMALL)
  assert.ok(r.normalSent > 100, `normal traffic ran (${r.normalSent})`)
  assert.equal(r.report.failed, 0, `failed: ${r.failedDetail}`)
  for (const b of r.readerBytes) assert.ok(b > 1024 * 1024, `each slow reader got more than 1 MiB (${b})`)
  assert.ok(r.frontPeakMiB < FRONT_BOUND_MIB, `front peak RSS ${r.frontPeakMiB} MiB < ${FRONT_BOUND_MIB} MiB`)
})
