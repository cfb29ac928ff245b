/**
 * One request as the pool sees it (Call), the interface of the connection it answers through
 * (Exchange), and the intrusive list that links a slot's calls oldest first (the order a dead
 * thread's calls are sorted in, orphans.ts). Also what a call keeps of its request body so it
 * can run again on another thread (KEEP_BODY, rewindCall).
 */
import type { FerryError, RequestHead } from '@ferry/protocol'
import type { Slot } from './slot.js'

/**
 * Whether the request sent to a slot as number `seq` (Call.seqOnSlot, Slot.sent) has been
 * begun by its loop, whose shared counter reads `started`. That counter is an Int32 and wraps
 * after 2^31 requests on one thread (a day at 25k req/s); `seq` does not. Their difference
 * stays far inside ±2^31 (it is bounded by the requests in flight on the slot), so compare it.
 */
export function seqBegun (seq: number, started: number): boolean {
  return ((seq - started) | 0) <= 0
}

/** Requests sent to a slot that its loop has not begun (wrap-safe, as seqBegun). */
export function unbegun (sent: number, started: number): number {
  return (sent - started) | 0
}

/** Request-body bytes per call kept after they went to a thread, for a re-run if it dies. */
export const KEEP_BODY = 64 * 1024

/** The main-thread side of one request: the connection it came from answers through this. */
export interface Exchange {
  readonly head: RequestHead
  onHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void
  /** A response chunk; the exchange calls pool.credit(call, n) once the bytes are written on. */
  onChunk (chunk: Uint8Array): void
  onEnd (): void
  /** The request failed: answer err.statusCode if no head went out yet, else reset. */
  onFail (err: FerryError): void
  /** The handler took n request-body bytes: return that credit upstream. */
  onConsumed (n: number): void
  /** A WebSocket upgrade this node may accept (context.upgradeWebSocket works for it). */
  readonly upgrade?: boolean
}

export class Call {
  readonly rid: number
  readonly ex: Exchange
  /** When the timeout clock started (see Pool #sweep). */
  start: number
  slot: Slot | null = null
  /** Position of this request among the requests sent to its slot (1-based). */
  seqOnSlot = 0
  pendingBody: ArrayBuffer[] = []
  bodyEnded = false
  headReceived = false
  done = false
  /**
   * Threads that died while running this request (it had begun there). The first time it is
   * re-dispatched as a suspect; the second time it fails (see orphans.ts).
   */
  strikes = 0
  /** Request-body credit already returned upstream, and the part of it this run reported. */
  consumedReported = 0
  consumedRun = 0
  /** Body bytes handed to the thread, kept (up to KEEP_BODY) so the request can run again; null past it. */
  kept: ArrayBuffer[] | null = []
  keptBytes = 0
  /**
   * The slot's list of its calls runs through the calls themselves (not a Set: see IntTable in @ferry/protocol):
   * `onSlot` is set while this call is in `slot`'s list.
   */
  onSlot = false
  /** Answered 101: a long-lived WebSocket, no longer counted against the slot's concurrency. */
  ws = false
  prevOnSlot: Call | null = null
  nextOnSlot: Call | null = null
  constructor (rid: number, ex: Exchange, start: number) {
    this.rid = rid
    this.ex = ex
    this.start = start
  }
}

/** Append a call to its slot's list (the order orphans.ts walks). */
export function linkCall (slot: Slot, call: Call): void {
  call.onSlot = true
  call.prevOnSlot = slot.lastCall
  call.nextOnSlot = null
  if (slot.lastCall === null) slot.firstCall = call
  else slot.lastCall.nextOnSlot = call
  slot.lastCall = call
}

export function unlinkCall (slot: Slot, call: Call): void {
  const prev = call.prevOnSlot
  const next = call.nextOnSlot
  if (prev === null) slot.firstCall = next
  else prev.nextOnSlot = next
  if (next === null) slot.lastCall = prev
  else next.prevOnSlot = prev
  call.onSlot = false
  call.prevOnSlot = null
  call.nextOnSlot = null
}

/**
 * Keep a copy of body bytes about to go to the call's thread (they go by clone) while the
 * kept bytes stay within KEEP_BODY; false past it (they go by transfer, and the call can no
 * longer run again).
 */
export function keepBody (call: Call, ab: ArrayBuffer): boolean {
  if (call.kept === null || call.keptBytes + ab.byteLength > KEEP_BODY) return false
  call.kept.push(ab)
  call.keptBytes += ab.byteLength
  return true
}

/**
 * The thread's handler took n more request-body bytes: the credit to return upstream. A
 * re-run consumes the body again: only credit not returned before counts.
 */
export function consumedCredit (call: Call, n: number): number {
  call.consumedRun += n
  if (call.consumedRun <= call.consumedReported) return 0
  const credit = call.consumedRun - call.consumedReported
  call.consumedReported = call.consumedRun
  return credit
}

/** Ready a call for another run: the kept body goes out again before any later bytes. */
export function rewindCall (c: Call): void {
  c.consumedRun = 0
  if (c.kept !== null && c.kept.length > 0) c.pendingBody = [...c.kept, ...c.pendingBody]
  c.kept = []
  c.keptBytes = 0
}
