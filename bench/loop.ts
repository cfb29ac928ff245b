/**
 * Worker-loop micro-bench: the app-server's WorkerLoop alone (no sockets, no pool), fed
 * through the in-process port pair with 64 requests in flight, running the hello handler
 * (examples/hello/app.ts "/"). It compares the loop with and without the per-request
 * AsyncLocalStorage context that attributes uncaught exceptions (--max-uncaught > 0 vs 0).
 * Each variant runs in its own process (Node's async hooks stay on once enabled), in
 * interleaved rounds; the figures are medians: loop-only requests/s and CPU µs per request.
 *
 *   npx tsc -b && node --import tsx bench/loop.ts [seconds=2] [rounds=5]
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { inlinePortPair } from '../packages/app-server/dist/inline-port.js'
import { WorkerLoop } from '../packages/app-server/dist/loop.js'
import { Op } from '../packages/app-server/dist/messages.js'
import { installLightResponse } from '../packages/app-server/dist/response.js'

const INFLIGHT = 64

interface Figures { rps: number, cpuUs: number }

async function child (attribute: boolean, seconds: number): Promise<Figures> {
  installLightResponse()
  const app = (await import('../examples/hello/app.ts')).default
  const [main, worker] = inlinePortPair()
  new WorkerLoop(worker, (r, c) => app.fetch(r, c as never), pino({ level: 'silent' }), new Int32Array(new SharedArrayBuffer(4)), attribute)
  const headers = ['accept', '*/*', 'user-agent', 'bench']
  let rid = 0
  let seq = 0
  let out: unknown[][] = []
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    const ops = out
    out = []
    main.postMessage([++seq, ...ops])
  }
  const send = (): void => {
    rid++
    out.push([Op.REQ, rid, 'GET', 'http', 'bench.local', '/', headers, '127.0.0.1', 1, `r${rid}`, 0])
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  }
  let until = 0
  let live = 0
  let answered = 0
  let ended: () => void = () => {}
  main.on('message', (msg) => {
    for (const op of msg as unknown[][]) {
      if (op[0] !== Op.HEAD) continue
      answered++
      if (performance.now() < until) send()
      else if (--live === 0) ended()
    }
  })
  const phase = (ms: number): Promise<void> => new Promise((resolve) => {
    until = performance.now() + ms
    live = INFLIGHT
    ended = resolve
    for (let i = 0; i < INFLIGHT; i++) send()
  })
  await phase(500) // warm-up
  answered = 0
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  await phase(seconds * 1000)
  const c = process.cpuUsage(c0)
  return { rps: answered / ((performance.now() - t0) / 1000), cpuUs: (c.user + c.system) / answered }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

if (process.argv[2] === '--child') {
  process.stdout.write(JSON.stringify(await child(process.argv[3] === '1', Number(process.argv[4]))))
  process.exit(0)
}

const seconds = Number(process.argv[2] ?? 2)
const rounds = Number(process.argv[3] ?? 5)
const self = fileURLToPath(import.meta.url)
const runs: Record<string, Figures[]> = { off: [], on: [] }
for (let r = 0; r < rounds; r++) {
  for (const [name, flag] of [['off', '0'], ['on', '1']] as const) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', self, '--child', flag, String(seconds)], { encoding: 'utf8' })
    runs[name]!.push(JSON.parse(out) as Figures)
  }
}
const fig = (name: string): Figures => ({ rps: median(runs[name]!.map((f) => f.rps)), cpuUs: median(runs[name]!.map((f) => f.cpuUs)) })
const off = fig('off')
const on = fig('on')
console.log(`\nWorkerLoop alone, hello handler, ${INFLIGHT} in flight, ${rounds} interleaved rounds × ${seconds} s, medians, node ${process.version}`)
console.log('| per-request async context | loop req/s | CPU µs/req |')
console.log('|---|---:|---:|')
console.log(`| off (--max-uncaught 0, --threads 0) | ${Math.round(off.rps)} | ${off.cpuUs.toFixed(2)} |`)
console.log(`| on (worker threads, --max-uncaught > 0) | ${Math.round(on.rps)} | ${on.cpuUs.toFixed(2)} |`)
console.log(`\ncost: ${(on.cpuUs - off.cpuUs).toFixed(2)} µs CPU per request (${(100 * (on.cpuUs / off.cpuUs - 1)).toFixed(1)}% of the loop's own work)`)
