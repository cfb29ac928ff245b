/**
 * The load generator: wrk when installed (it costs less CPU than a Node client, which
 * matters when it shares the cores with the servers), else autocannon as a library. The
 * same workload definition drives both.
 */
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import autocannon from 'autocannon'

export const WRK = '/usr/bin/wrk'

export interface Workload {
  name: 'hello' | 'browser' | 'post64k'
  method: 'GET' | 'POST'
  path: string
  headers: Record<string, string>
  body?: Buffer
}

export interface LoadResult {
  requests: number
  seconds: number
  rps: number
  p50ms: number
  p99ms: number
  /** Connection errors, timeouts and non-2xx answers. */
  errors: number
}

export interface LoadOptions {
  /** http://127.0.0.1:port */
  origin: string
  workload: Workload
  connections: number
  seconds: number
  generator: 'wrk' | 'autocannon'
  /** A directory for wrk's Lua script. */
  tmpDir: string
}

export function defaultGenerator (): 'wrk' | 'autocannon' {
  return existsSync(WRK) ? 'wrk' : 'autocannon'
}

export function runLoad (o: LoadOptions): Promise<LoadResult> {
  return o.generator === 'wrk' ? runWrk(o) : runAutocannon(o)
}

function luaString (s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** wrk's latency figures: "3.90ms", "812.00us", "1.02s". */
export function parseDuration (s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim())
  if (m === null) return Number.NaN
  const v = Number(m[1])
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60000
}

/** Reads wrk --latency output. */
export function parseWrk (out: string): LoadResult {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out)
  if (total === null) throw new Error(`wrk output not understood:\n${out}`)
  const requests = Number(total[1])
  const seconds = parseDuration(`${total[2]}${total[3]}`) / 1000
  const p50 = /^\s*50%\s+(\S+)/m.exec(out)
  const p99 = /^\s*99%\s+(\S+)/m.exec(out)
  let errors = 0
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  if (sock !== null) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4])
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)
  if (non2xx !== null) errors += Number(non2xx[1])
  return {
    requests,
    seconds,
    rps: requests / seconds,
    p50ms: p50 === null ? Number.NaN : parseDuration(p50[1]!),
    p99ms: p99 === null ? Number.NaN : parseDuration(p99[1]!),
    errors
  }
}

function runWrk (o: LoadOptions): Promise<LoadResult> {
  const w = o.workload
  const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--latency', '--timeout', '5s']
  if (w.method !== 'GET' || w.body !== undefined) {
    const script = join(o.tmpDir, `${w.name}.lua`)
    const lines = [`wrk.method = ${luaString(w.method)}`]
    // the body as a repeated byte: wrk sends it verbatim with a Content-Length
    if (w.body !== undefined) lines.push(`wrk.body = string.rep("x", ${w.body.length})`)
    writeFileSync(script, `${lines.join('\n')}\n`)
    args.push('-s', script)
  }
  for (const [k, v] of Object.entries(w.headers)) args.push('-H', `${k}: ${v}`)
  args.push(o.origin + w.path)
  return spawnWrk(args).then(parseWrk)
}

/** Runs wrk with `args`; resolves with its output (stdout and stderr), rejects unless it exits 0. */
export function spawnWrk (args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { out += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { out += s })
    child.once('error', reject)
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`wrk exited with ${code}:\n${out}`))
      else resolve(out)
    })
  })
}

async function runAutocannon (o: LoadOptions): Promise<LoadResult> {
  const w = o.workload
  const r = await autocannon({
    url: o.origin + w.path,
    connections: o.connections,
    duration: o.seconds,
    method: w.method,
    headers: w.headers,
    body: w.body,
    timeout: 5
  })
  const seconds = r.duration
  const requests = r.requests.total
  return {
    requests,
    seconds,
    rps: requests / seconds,
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    errors: r.errors + r.timeouts + r.non2xx
  }
}
