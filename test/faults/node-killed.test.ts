/**
 * Fault scenario 1 at test scale (8 connections, ~4 s of load): kill -9 one of 3 nodes.
 * docs/reliability.md has the full-scale figures (npm run reliability).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nodeKilled, SMALL } from './scenarios/node-killed.ts'

test('kill -9 one of 3 nodes under GET load: zero failed GETs, ejected, re-admitted after restart', { timeout: 45000 }, async () => {
  const r = await nodeKilled(SMALL)
  assert.ok(r.report.sent > 100, `load ran (${r.report.sent} requests)`)
  assert.equal(r.report.failed, 0, `failed GETs: ${r.failedDetail}`)
  assert.equal(r.ejected, true, 'the front logged "upstream node ejected"')
  assert.equal(r.readmitted, true, 'the front logged "upstream node re-admitted"')
  assert.ok(r.servedByRestarted > 0, 'the restarted node answered requests again')
})
