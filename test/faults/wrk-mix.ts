/**
 * Scenario 4's throughput measurement with wrk (C) as the load generator. The test's own
 * undici load (harness.ts Load) records every outcome and so checks the statuses, but it is a
 * Node process on the same two cores as the servers and spends more per request when faults
 * are in the mix (a hang's request goes out on a connection of its own: measured 25 → 29–36
 * µs of the generator's CPU per request with 1% hangs) — CPU the servers then lack, which the
 * ratio would charge to them. wrk spends a few µs per request whatever the answer.
 *
 * One round = one wrk on 32 connections sending the scenario's pattern without the hangs
 * (faultOf: 5 in 100 throw, 1 crashes, the hang's slot sends a good request) and, in faulty
 * rounds, a second wrk whose every request hangs, on as many connections as 1% of the
 * requests: each holds its connection until the node's --timeout answers 504, as a client
 * whose request hangs does. The Lua script classifies every answer by status and
 * x-ferry-error, so a round also says whether anything but the injected faults failed.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnWrk, WRK } from '../../bench/load.ts'

export function hasWrk (): boolean {
  return existsSync(WRK)
}

/** Answers of one wrk run, by class. */
export interface WrkCounts {
  /** 200 */
  ok: number
  /** 500 FERRY_ERR_APP_HANDLER_THREW */
  threw: number
  /** 500 FERRY_ERR_APP_UNCAUGHT */
  uncaught: number
  /** 504 FERRY_ERR_APP_TIMEOUT */
  timedOut: number
  /** anything else */
  other: number
  /** requests written, by the kind the script chose */
  sentNone: number
  sentThrow: number
  sentCrash: number
  sentHang: number
  /** wrk's socket errors (connect, read, write, timeout) */
  socketErrors: number
  seconds: number
}

const COUNTERS = ['ok', 'threw', 'uncaught', 'timedOut', 'other', 'sentNone', 'sentThrow', 'sentCrash', 'sentHang'] as const

/**
 * The Lua script: `pattern` "mix" (faultOf's pattern, hangs replaced by good requests),
 * "none" or "hang". Counters live in the thread's globals; done() reads them with
 * thread:get and prints one line `ferry-counts k=v …`.
 */
function script (pattern: 'mix' | 'none' | 'hang'): string {
  return `local pattern = "${pattern}"
local i = 0
${COUNTERS.map((c) => `${c} = 0`).join('\n')}
local threads = {}
function setup (thread) table.insert(threads, thread) end
function request ()
  i = i + 1
  local kind = "none"
  if pattern == "hang" then kind = "hang"
  elseif pattern == "mix" then
    local k = (i * 37) % 100
    if k < 5 then kind = "throw" elseif k == 6 then kind = "crash" end
  end
  if kind == "none" then sentNone = sentNone + 1 elseif kind == "throw" then sentThrow = sentThrow + 1
  elseif kind == "crash" then sentCrash = sentCrash + 1 else sentHang = sentHang + 1 end
  return wrk.format("GET", "/fault?kind=" .. kind)
end
function response (status, headers, body)
  local code = headers["x-ferry-error"] or headers["X-Ferry-Error"]
  if status == 200 then ok = ok + 1
  elseif status == 500 and code == "FERRY_ERR_APP_HANDLER_THREW" then threw = threw + 1
  elseif status == 500 and code == "FERRY_ERR_APP_UNCAUGHT" then uncaught = uncaught + 1
  elseif status == 504 and code == "FERRY_ERR_APP_TIMEOUT" then timedOut = timedOut + 1
  else other = other + 1 end
end
function done (summary, latency, requests)
  local out = "ferry-counts"
  for _, name in ipairs({${COUNTERS.map((c) => `"${c}"`).join(', ')}}) do
    local sum = 0
    for _, t in ipairs(threads) do sum = sum + t:get(name) end
    out = out .. " " .. name .. "=" .. sum
  end
  local e = summary.errors
  out = out .. " socketErrors=" .. (e.connect + e.read + e.write + e.timeout) .. " seconds=" .. (summary.duration / 1e6)
  io.write(out .. "\\n")
end
`
}

/** One wrk run against `base` (http://host:port), `seconds` long. */
export async function runWrkMix (dir: string, base: string, pattern: 'mix' | 'none' | 'hang', connections: number, seconds: number): Promise<WrkCounts> {
  const file = join(dir, `wrk-${pattern}.lua`)
  writeFileSync(file, script(pattern))
  // a hang is answered after the node's --timeout (1 s): wrk's own timeout must be longer
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', file, `${base}/fault`]
  const out = await spawnWrk(args)
  const line = out.split('\n').find((l) => l.startsWith('ferry-counts '))
  if (line === undefined) throw new Error(`wrk printed no counts:\n${out}`)
  const counts: Record<string, number> = {}
  for (const kv of line.slice('ferry-counts '.length).split(' ')) {
    const [k, v] = kv.split('=')
    counts[k!] = Number(v)
  }
  return counts as unknown as WrkCounts
}
