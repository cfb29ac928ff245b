/**
 * App-server bench: a hello-world fetch handler through `ferry app`, driven by a native ferry
 * client (this process) over one multiplexed connection and over several, for
 *   --threads 0 (handler inline on the main thread: the "no pool" line)
 *   --threads 1, --threads 2 (the piscina pool)
 * in the same run. Reports req/s, p50/p99 latency and the app-server process's CPU µs per
 * request (/proc/<pid>/stat utime+stime, all threads). The client shares the machine's cores
 * with the server: figures are rough, compare lines within one run.
 *
 *   node --import tsx bench/app-server.ts [seconds=4] [inflight=64]
 */
import { readFileSync } from 'node:fs'
import type { Session } from '@ferry/protocol'
import { connect, head } from '../test/app-server/client.ts'
import { startFerry } from '../test/helpers/proc.ts'

const SECONDS = Number(process.argv[2] ?? 4)
const INFLIGHT = Number(process.argv[3] ?? 64)
const HANDLER = 'examples/hello/app.ts'
const TICK_US = 1e6 / 100 // USER_HZ

function cpuUs (pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) * TICK_US // utime, stime
}

function pct (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

async function drive (sessions: Session[], seconds: number, inflight: number): Promise<{ n: number, lat: number[] }> {
  const lat: number[] = []
  let n = 0
  const until = performance.now() + seconds * 1000
  const h = head('/', { headers: ['accept', '*/*', 'user-agent', 'bench'] })
  const one = (s: Session): Promise<void> => new Promise((resolve) => {
    const t0 = performance.now()
    const st = s.request(h, true)
    st.onData = () => {}
    st.onEnd = () => {
      lat.push(performance.now() - t0)
      n++
      resolve()
    }
    st.onError = () => resolve()
  })
  const loop = async (s: Session): Promise<void> => {
    while (performance.now() < until) await one(s)
  }
  const per = Math.max(1, Math.floor(inflight / sessions.length))
  await Promise.all(sessions.flatMap((s) => Array.from({ length: per }, () => loop(s))))
  return { n, lat }
}

interface Row { mode: string, conns: number, rps: number, p50: number, p99: number, cpuUs: number }

async function run (threads: string, conns: number): Promise<Row> {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', threads, '--log-level', 'warn'])
  try {
    const sessions = await Promise.all(Array.from({ length: conns }, () => connect(app.addresses[0]!)))
    await drive(sessions, 1, INFLIGHT) // warm-up
    const c0 = cpuUs(app.pid)
    const t0 = performance.now()
    const { n, lat } = await drive(sessions, SECONDS, INFLIGHT)
    const secs = (performance.now() - t0) / 1000
    const c1 = cpuUs(app.pid)
    for (const s of sessions) s.destroy()
    lat.sort((a, b) => a - b)
    return { mode: threads === '0' ? 'inline (--threads 0)' : `pool --threads ${threads}`, conns, rps: n / secs, p50: pct(lat, 0.5), p99: pct(lat, 0.99), cpuUs: (c1 - c0) / n }
  } finally {
    await app.stop()
  }
}

const rows: Row[] = []
for (const conns of [1, 4]) {
  for (const threads of ['0', '1', '2']) rows.push(await run(threads, conns))
}
console.log(`\nferry app, hello handler (${HANDLER} "/"), ${INFLIGHT} requests in flight, ${SECONDS} s per line, node ${process.version}`)
console.log('| mode | conns | req/s | p50 ms | p99 ms | app CPU µs/req |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const r of rows) console.log(`| ${r.mode} | ${r.conns} | ${Math.round(r.rps)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.cpuUs.toFixed(1)} |`)
