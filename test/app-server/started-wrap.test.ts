/**
 * A pool thread's loop counts the requests it has begun in a shared Int32 (loop.ts), which
 * wraps after 2^31 requests on one thread — about a day at 25k req/s. Which requests a thread
 * has begun decides a timeout's clock (sweep.ts) and a dead thread's requests' fate
 * (orphans.ts: re-dispatched when never begun). Past the wrap both must still tell begun
 * from not begun; before the fix every request looked unbegun: timeouts never fired, and a
 * crash re-ran begun POSTs.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Call, seqBegun, unbegun } from '../../packages/app-server/src/call.ts'
import { Fate, orphanFate, soleCause } from '../../packages/app-server/src/orphans.ts'
import type { Slot } from '../../packages/app-server/src/slot.ts'
import { expiredCalls } from '../../packages/app-server/src/sweep.ts'

const WRAP = 2 ** 31

/** The counter as the loop leaves it after `n` requests (Atomics.store into an Int32Array). */
function counter (n: number): Int32Array {
  const started = new Int32Array(new SharedArrayBuffer(8))
  Atomics.store(started, 0, n)
  return started
}

function call (slot: Partial<Slot>, seqOnSlot: number, method = 'POST'): Call {
  return { slot, seqOnSlot, start: 0, done: false, headReceived: false, kept: [], strikes: 0, ex: { head: { method } } } as unknown as Call
}

test('begun or not, across the wrap of the shared counter', () => {
  for (const base of [5, WRAP - 3, WRAP, WRAP + 7, 2 * WRAP + 1, 3 * WRAP - 2]) {
    const started = Atomics.load(counter(base), 0)
    assert.equal(seqBegun(base, started), true, `${base}`)
    assert.equal(seqBegun(base - 1, started), true, `${base - 1}`)
    assert.equal(seqBegun(base + 1, started), false, `${base + 1}`)
    assert.equal(unbegun(base + 40, started), 40, `${base}`)
  }
})

test('past the wrap, a begun request times out and an unbegun one does not', () => {
  const slot = { started: counter(WRAP + 10) } as Partial<Slot>
  const begun = call(slot, WRAP + 9)
  const waiting = call(slot, WRAP + 11)
  const expired = expiredCalls([begun, waiting], 60_000, 30_000)
  assert.deepEqual(expired, [begun])
  assert.equal(waiting.start, 60_000, 'a request not begun has its clock restarted')
})

test('past the wrap, a dead thread\'s begun POST fails and its unbegun one is re-dispatched', () => {
  const started = Atomics.load(counter(WRAP + 10), 0)
  const begunPost = call({}, WRAP + 10)
  const unbegunPost = call({}, WRAP + 11)
  const sole = soleCause([begunPost, unbegunPost], started, 'FERRY_ERR_APP_WORKER_CRASHED')
  assert.equal(sole, true, 'one begun request: it is the cause')
  assert.equal(orphanFate(begunPost, seqBegun(begunPost.seqOnSlot, started), false), Fate.FAIL)
  assert.equal(orphanFate(unbegunPost, seqBegun(unbegunPost.seqOnSlot, started), false), Fate.REDO)
})
