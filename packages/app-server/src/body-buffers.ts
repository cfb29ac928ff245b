/**
 * Reused ArrayBuffers for the request-body chunks the main thread copies off the connection
 * (pool.ts `body()`). A chunk kept for a re-run (while a request's body is under KEEP_BODY)
 * reaches its worker by structured clone, so the main thread's copy is free again once the
 * request no longer needs it. Without reuse every chunk is a new backing store, and V8 starts
 * a full mark-compact of the main thread's heap for every few tens of MiB of new external
 * memory: with 64 KiB POSTs that was most of the app's CPU (`--trace-gc`: 80 mark-compacts
 * in 3 s, 78 of them "external memory pressure"). Buffers are matched by exact size (DATA
 * frames of one upload mostly share a size), handed back only after the next postMessage
 * (a batch not yet posted may still clone one), and the pool is bounded. With handlers on
 * the main thread (--threads 0) nothing is cloned — the loop gets the very buffer — so
 * nothing is reused.
 */

/** Bytes the free lists may hold in all. */
const MAX_FREE_BYTES = 8 * 1024 * 1024

export class BodyBuffers {
  readonly #reuse: boolean
  #free = new Map<number, ArrayBuffer[]>()
  #freeBytes = 0
  #released: ArrayBuffer[] = []

  /** reuse: the buffers reach their reader by copy (worker threads), so they may be reused. */
  constructor (reuse: boolean) {
    this.#reuse = reuse
  }

  /** A buffer of exactly n bytes: a free one, else a new one. */
  take (n: number): ArrayBuffer {
    const list = this.#free.get(n)
    if (list !== undefined && list.length > 0) {
      this.#freeBytes -= n
      return list.pop()!
    }
    return new ArrayBuffer(n)
  }

  /** The request is done with these (never transferred ones: they still have their bytes). */
  release (buffers: ArrayBuffer[]): void {
    if (!this.#reuse) return
    for (const ab of buffers) this.#released.push(ab)
  }

  /** Every batch queued so far has been posted: what was released may be handed out again. */
  posted (): void {
    if (this.#released.length === 0) return
    for (const ab of this.#released) {
      const n = ab.byteLength
      if (n === 0 || this.#freeBytes + n > MAX_FREE_BYTES) continue
      let list = this.#free.get(n)
      if (list === undefined) this.#free.set(n, list = [])
      list.push(ab)
      this.#freeBytes += n
    }
    this.#released = []
  }
}
