/**
 * The pool's periodic sweep, as plain functions over its calls and slots: which requests ran
 * past --timeout, which workers did not answer the heartbeat sent after a timeout (harakiri:
 * the pool terminates and replaces them), and which threads above the minimum sat idle long
 * enough to retire. The pool (pool.ts #sweep) acts on what these return.
 */
import { type Call, seqBegun } from './call.js'
import type { Slot } from './slot.js'

/** ms between sweeps: a quarter of the timeout, within 10..250 ms. */
export function sweepInterval (timeout: number): number {
  return Math.max(10, Math.min(250, timeout > 0 ? timeout / 4 : 250))
}

/** ms a worker has to answer the heartbeat sent after one of its requests timed out. */
export function heartbeatGrace (timeout: number): number {
  return Math.max(200, Math.min(timeout, 2000))
}

/**
 * The calls (in the order given) whose response head is overdue. The clock runs from when a
 * worker begins the request (uWSGI's harakiri does the same): waiting in the queue, or behind
 * a stuck request on its thread, does not count — such a call's clock restarts at `now`.
 */
export function expiredCalls (calls: Call[], now: number, timeout: number): Call[] {
  const expired: Call[] = []
  for (const call of calls) {
    if (call.done || call.headReceived) continue
    const slot = call.slot
    if (slot === null || !seqBegun(call.seqOnSlot, Atomics.load(slot.started, 0))) {
      call.start = now
      continue
    }
    if (now - call.start < timeout) continue
    expired.push(call)
  }
  return expired
}

/** Slots whose event loop did not answer a heartbeat within `grace` ms: stuck. */
export function stuckSlots (slots: Set<Slot>, now: number, grace: number): Slot[] {
  const stuck: Slot[] = []
  for (const slot of slots) {
    if (slot.pingSentAt > 0 && now - slot.pingSentAt > grace && !slot.dead) stuck.push(slot)
  }
  return stuck
}

/** A loaded thread with nothing running (no request, no WebSocket) for over `idleTimeout` ms. */
export function idleSlot (slot: Slot, now: number, idleTimeout: number): boolean {
  return slot.ready && !slot.retiring && slot.inflight === 0 && slot.wsOpen === 0 && now - slot.idleSince > idleTimeout
}
