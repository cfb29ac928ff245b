/**
 * Per-request records by integer id (pool calls on the main thread, jobs in a worker loop).
 * Not a Map on purpose, for the reason StreamTable in @ferry/protocol gives: a JS Map/Set with
 * one insert and one delete per request rehashes into a fresh table every few hundred
 * requests, and V8 links each obsolete table to its successor (for live iterators). Once one
 * dead table is promoted, the scavenger keeps every later table — and every call, request and
 * response they reference — alive until the next mark-compact. Integer keys on a
 * null-prototype object (dictionary elements) do not chain.
 *
 * Ids must be array indices (non-negative integers below 2^32 - 1); values() then comes back
 * in ascending id order, which for ids handed out by a counter is insertion order (what a Map
 * iterates in).
 */
export class IdTable<T> {
  #byId: Record<number, T> = Object.create(null) as Record<number, T>
  #size = 0

  get size (): number { return this.#size }

  get (id: number): T | undefined {
    return this.#byId[id]
  }

  set (id: number, value: T): void {
    if (this.#byId[id] === undefined) this.#size++
    this.#byId[id] = value
  }

  /** True when the id was present. */
  delete (id: number): boolean {
    if (this.#byId[id] === undefined) return false
    delete this.#byId[id]
    this.#size--
    return true
  }

  /** A snapshot of the values, in ascending id order. */
  values (): T[] {
    return Object.values(this.#byId)
  }
}
