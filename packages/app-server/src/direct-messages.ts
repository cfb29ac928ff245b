/**
 * What the main thread and its `--direct` threads say to each other (direct.ts, direct-thread.ts),
 * and a thread's gauges for `--stats` in a form that crosses threads (its counters are shared:
 * Metrics.mirror).
 */
import { CgiRunner } from './cgi.js'
import { Pool, POOL_EVENTS } from './pool.js'
import type { AppServerOptions } from './server.js'

export interface DirectThreadData {
  /** The thread's own server: handlers inline, its own addresses, no stats, no --direct. */
  options: AppServerOptions
  /** 1-based thread number (its addresses end in it). */
  index: number
  /** Int32Array over a SharedArrayBuffer: the heartbeat counter. */
  beat: Int32Array
  /** Heartbeat period, ms. */
  tick: number
  /**
   * Float64Array over a SharedArrayBuffer: the thread's counters (Metrics.mirror), MIRROR_CELLS
   * for the server, then MIRROR_CELLS per mount in the order of its `mounts` (with two or more).
   */
  counters: Float64Array
  /**
   * Float64Array over a SharedArrayBuffer: the thread's pools' events (POOL_EVENTS order: 504s,
   * queue-full refusals, uncaught exceptions …), summed over its mounts; copied every tick and
   * before each stats answer.
   */
  events: Float64Array
}

export type ToThread = { op: 'stats', seq: number } | { op: 'shutdown' }

export type FromThread =
  | { op: 'listening', addresses: string[], threadId: number, mounts: string[] }
  | { op: 'failed', code: string, message: string }
  | { op: 'stats', seq: number, gauges: ThreadGauges }
  | { op: 'unbound' }
  /** --max-uncaught reached: replace this thread gracefully. */
  | { op: 'recycle' }
  /** The thread ends on an error no request owns (it logged it). */
  | { op: 'crashed' }
  | { op: 'stopped', drained: boolean }

export interface MountGauges {
  label: string
  inflight: number
  queued: number
}

/** A thread's gauges (its counters are in shared memory: Metrics.mirror). */
export interface ThreadGauges {
  inflight: number
  queued: number
  /** Open streams of each native connection. */
  streams: number[]
  mounts: MountGauges[]
}

/** Requests a mount's dispatcher runs now (fetch: in a worker or inline; CGI: programs running). */
export function mountInflight (d: unknown): number {
  return d instanceof Pool ? d.inflight : d instanceof CgiRunner ? d.running : 0
}

/** Requests waiting in a mount's dispatcher. */
export function mountQueued (d: unknown): number {
  return d instanceof Pool ? d.queued : d instanceof CgiRunner ? d.queued : 0
}

/** The gauges of a thread's server (its part of the node's /metrics besides the counters). */
export function gaugesOf (server: { mounts: { label: string, dispatcher: unknown }[], sessions: Set<{ openStreams: number }> }): ThreadGauges {
  let inflight = 0
  let queued = 0
  const mounts: MountGauges[] = server.mounts.map((m) => {
    const mi = mountInflight(m.dispatcher)
    const mq = mountQueued(m.dispatcher)
    inflight += mi
    queued += mq
    return { label: m.label, inflight: mi, queued: mq }
  })
  return { inflight, queued, streams: [...server.sessions].map((s) => s.openStreams), mounts }
}

/** Copy the pools' event counters of a thread's server into `into` (POOL_EVENTS order). */
export function copyEvents (server: { mounts: { dispatcher: unknown }[] }, into: Float64Array): void {
  into.fill(0)
  for (const m of server.mounts) {
    if (!(m.dispatcher instanceof Pool)) continue
    const c = m.dispatcher.counters
    for (let i = 0; i < POOL_EVENTS.length; i++) into[i]! += c[POOL_EVENTS[i]!]
  }
}
