/**
 * Fault scenario 4 at test scale (undici: 8 connections, 2 interleaved rounds of 1.5 s on a
 * fault-free twin and the faulty setup; then, with wrk installed, one 2 s wrk round each):
 * exactly the injected faults fail, with 500 / 504 / 500, under both generators, and the
 * pool regains its size; the same with the handler on --direct threads (the front sends the
 * requests to them), where no thread may die or be stopped. The injected crashes are uncaught exceptions of their own requests:
 * each is answered FERRY_ERR_APP_UNCAUGHT and no thread dies. Throughput is reported by
 * `npm run reliability`, not asserted here.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FAULTS_SMALL, handlerFaults } from './scenarios/handler-faults.ts'

for (const direct of [false, true]) {
  test(`throw 5% / hang 1% / crash 1%${direct ? ' on --direct threads' : ''}: exactly those fail (500/504/500), the rest succeed, the ${direct ? 'threads stay' : 'pool recovers'}`, { timeout: 60000 }, async (t) => {
    const r = await handlerFaults({ ...FAULTS_SMALL, direct })
    assert.ok((r.byKind.none ?? 0) > 100 && (r.byKind.throw ?? 0) > 0 && (r.byKind.hang ?? 0) > 0 && (r.byKind.crash ?? 0) > 0, `every kind ran: ${JSON.stringify(r.byKind)}`)
    assert.deepEqual(r.unexpected, {}, 'every request got the status of its kind')
    assert.equal(r.threadsAfter, FAULTS_SMALL.threads, direct ? 'ferry_app_direct_threads is --direct' : 'ferry_app_threads is back to --threads')
    assert.deepEqual(Object.keys(r.crashCodes), ['FERRY_ERR_APP_UNCAUGHT'], 'every crash request failed alone, with its own code')
    assert.equal(r.events.uncaught, r.byKind.crash, 'each crash counted once')
    assert.equal(r.events.crashed, 0, 'no thread died')
    if (direct) assert.equal((r.events['direct.crashed'] ?? 0) + (r.events['direct.stuck'] ?? 0), 0, 'no --direct thread died or was stopped')
    // the throughput measurement with wrk (report only), here checked for what it counts
    if (r.wrk === null) {
      t.diagnostic('wrk not installed: the wrk measurement of scenario 4 was skipped')
      return
    }
    const w = r.wrk
    assert.equal(w.mix.other + w.hang.other, 0, `wrk saw only 200, 500 threw / uncaught and 504: ${JSON.stringify(w)}`)
    assert.equal(w.mix.socketErrors + w.hang.socketErrors, 0, 'no connection failed under wrk')
    assert.ok(w.mix.ok > 100 && w.mix.threw > 0 && w.mix.uncaught > 0 && w.hang.timedOut > 0, `every kind answered under wrk: ${JSON.stringify(w)}`)
    assert.ok(w.mix.sentThrow - w.mix.threw <= 32 && w.mix.sentCrash - w.mix.uncaught <= 32, 'every throw and crash sent got its own answer (up to the requests in flight when wrk stopped)')
    assert.equal(w.threadsAfter, FAULTS_SMALL.threads, 'the pool is at its size after the wrk rounds too')
  })
}
