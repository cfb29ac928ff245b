/**
 * What becomes of the calls of a dead thread (crashed, or terminated as stuck): fail, run
 * again ahead of the queue, or run once more as a suspect. The pool applies the fates
 * (pool.ts #orphan); this file holds the rule and takes the calls off the dead slot.
 */
import { type Call, seqBegun } from './call.js'
import type { Slot } from './slot.js'

/** How a thread's death is reported to the requests it fails. */
export type DeathCode = 'FERRY_ERR_APP_WORKER_CRASHED' | 'FERRY_ERR_APP_WORKER_REPLACED'

export const Fate = {
  /** Answer the death's error. */
  FAIL: 0,
  /** Not begun: run again, whatever its method, ahead of the queue. */
  REDO: 1,
  /** Begun and idempotent, first strike: run once more, at most one suspect per thread. */
  SUSPECT: 2
} as const
export type Fate = typeof Fate[keyof typeof Fate]

/** Methods that may run twice with the effect of once (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** Take every call off a dead slot's list, oldest first, and zero the slot's counts. */
export function detachCalls (slot: Slot): Call[] {
  const calls: Call[] = []
  for (let c = slot.firstCall; c !== null; c = c.nextOnSlot) calls.push(c)
  for (const c of calls) {
    c.onSlot = false
    c.prevOnSlot = null
    c.nextOnSlot = null
  }
  slot.firstCall = null
  slot.lastCall = null
  slot.inflight = 0
  slot.wsOpen = 0
  slot.suspects = 0
  return calls
}

/**
 * A thread that crashed while running a single request: that one is the cause. `started` is
 * the slot's shared counter of requests its loop began.
 */
export function soleCause (calls: Call[], started: number, code: DeathCode): boolean {
  if (code !== 'FERRY_ERR_APP_WORKER_CRASHED') return false
  let begunCount = 0
  for (const c of calls) if (!c.done && seqBegun(c.seqOnSlot, started)) begunCount++
  return begunCount === 1
}

/**
 * The fate of one call of a dead slot (not yet answered: a timed-out request got its 504
 * before the kill and is not asked about). With many requests per thread the main thread
 * cannot tell which one killed it, so:
 *  - a request that produced a response head, or whose body bytes handed to the thread
 *    passed KEEP_BODY (no copy was kept), fails;
 *  - a request the thread had not begun (the shared `started` counter) is re-dispatched,
 *    whatever its method, ahead of the queue;
 *  - a thread that crashed with one begun request: that request is the cause and fails;
 *  - a begun request with an idempotent method is re-dispatched once, as a suspect: suspects
 *    run at most one per thread, so if one is the poison it kills one more thread and only
 *    itself fails (second strike); a poison request costs at most two threads;
 *  - any other begun request (POST, PATCH… that may have had effects) fails.
 */
export function orphanFate (c: Call, begun: boolean, sole: boolean): Fate {
  if (c.headReceived || c.kept === null || (begun && sole)) return Fate.FAIL
  if (!begun) return Fate.REDO
  if (c.strikes === 0 && IDEMPOTENT.has(c.ex.head.method)) return Fate.SUSPECT
  return Fate.FAIL
}
