/**
 * Least-outstanding-requests balancing with the power of two choices (Mitzenmacher; nginx
 * `random two least_conn`, grpc-js's picker): sample two nodes at random and take the one
 * with fewer requests in flight. Ties go to the node that has served fewer requests, which
 * spreads a light, sequential load evenly instead of by coin flips.
 *
 * A pure function over the nodes' state; the state itself lives in the pool.
 */

export interface Pickable {
  /** Requests in flight on this node now. */
  outstanding: number
  /** Requests sent to this node so far (tie-break). */
  served: number
  /** Whether the node may take a request now (healthy, not ejected, not draining). */
  usable (now: number): boolean
}

function better<T extends Pickable> (a: T, b: T): T {
  if (a.outstanding !== b.outstanding) return a.outstanding < b.outstanding ? a : b
  return a.served <= b.served ? a : b
}

/**
 * Pick a node for the next request, or null when none is usable. `exclude` is the node a
 * failed attempt used: a retry never goes back to it.
 */
export function pick<T extends Pickable> (nodes: readonly T[], now: number, exclude: T | null = null, random: () => number = Math.random): T | null {
  const n = nodes.length
  if (n === 0) return null
  if (n === 1) {
    const only = nodes[0]!
    return only !== exclude && only.usable(now) ? only : null
  }
  const i = Math.floor(random() * n)
  let j = Math.floor(random() * (n - 1))
  if (j >= i) j++
  const a = nodes[i]!
  const b = nodes[j]!
  const aOk = a !== exclude && a.usable(now)
  const bOk = b !== exclude && b.usable(now)
  if (aOk && bOk) return better(a, b)
  if (aOk) return a
  if (bOk) return b
  // Both samples unusable (rare while most nodes are healthy): scan for the best usable one.
  let best: T | null = null
  for (let k = 0; k < n; k++) {
    const c = nodes[k]!
    if (c === exclude || !c.usable(now)) continue
    best = best === null ? c : better(best, c)
  }
  return best
}
