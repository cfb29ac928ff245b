/**
 * The per-turn batching of ops to worker loops: each slot collects the ops sent to it in one
 * event-loop turn (`[batchSeq, ...ops]`, with the ArrayBuffers to transfer), and one
 * setImmediate posts ONE message per dirty slot (messages.ts). The dirty slots are a plain
 * array, not a Set (a Set would churn; Slot.dirty marks membership).
 */
import type { BodyBuffers } from './body-buffers.js'
import type { Slot } from './slot.js'

export class Outbox {
  readonly #bodyBuffers: BodyBuffers
  /** Slots with ops waiting for the next flush. */
  #dirty: Slot[] = []
  #flushScheduled = false

  /** bodyBuffers: told after each flush that every batch queued so far has been posted. */
  constructor (bodyBuffers: BodyBuffers) {
    this.#bodyBuffers = bodyBuffers
  }

  /** Queue one op for the slot's next batch (dropped if the slot is dead). */
  send (slot: Slot, op: unknown[], transfer?: ArrayBuffer): void {
    if (slot.dead) return
    if (slot.out.length === 0) {
      slot.seq++
      slot.out.push(slot.seq)
    }
    slot.out.push(op)
    if (transfer !== undefined) slot.transfer.push(transfer)
    if (!slot.dirty) {
      slot.dirty = true
      this.#dirty.push(slot)
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true
      setImmediate(this.#flush)
    }
  }

  /** The slot is gone: take it off the dirty list (its pending ops are dropped). */
  undirty (slot: Slot): void {
    if (!slot.dirty) return
    slot.dirty = false
    const i = this.#dirty.indexOf(slot)
    if (i >= 0) this.#dirty.splice(i, 1)
  }

  #flush = (): void => {
    this.#flushScheduled = false
    const dirty = this.#dirty
    this.#dirty = []
    for (const slot of dirty) {
      slot.dirty = false
      if (slot.dead || slot.out.length === 0) continue
      const out = slot.out
      const transfer = slot.transfer
      slot.out = []
      slot.transfer = []
      slot.port.postMessage(out, transfer)
    }
    this.#bodyBuffers.posted()
  }
}
