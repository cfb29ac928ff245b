// Rough end-to-end figures for the front (the full harness is bench/): hello world through
// fastify direct, ferry front → ferry app (unix, tcp, uwsgi), fastify + @fastify/reply-from.
//   node packages/front/bench/e2e.mjs   (ONLY=direct,unix,tcp,uwsgi,replyfrom DUR=5 PROF=1)
// Prints req/s, p50/p99 and the front process's CPU µs per request.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'
const HERE = new URL('.', import.meta.url).pathname
const ROOT = new URL('../../..', import.meta.url).pathname
const CLI = `${ROOT}/packages/cli/dist/bin.js`
const procs = []
function start (args, extra = {}) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], ...extra })
    procs.push(c)
    let buf = ''
    c.stdout.on('data', (d) => {
      buf += d
      for (const line of buf.split('\n')) {
        try { const j = JSON.parse(line); if (j.msg === 'listening') { resolve({ c, addr: j.addresses[0], addresses: j.addresses }); return } } catch {}
      }
    })
    c.on('exit', (code) => reject(new Error(`exit ${code} ${args.join(' ')}`)))
  })
}
/** CPU seconds (user + system) a process has used so far (Linux /proc). */
function cpuOf (pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}
async function run (name, url, pid) {
  await autocannon({ url, connections: 50, duration: 1 })
  const c0 = pid ? cpuOf(pid) : 0
  const r = await autocannon({ url, connections: 50, duration: Number(process.env.DUR ?? 5) })
  const cpu = pid ? `  front CPU ${((cpuOf(pid) - c0) / r.requests.total * 1e6).toFixed(0)} µs/req` : ''
  console.log(`${name.padEnd(34)} ${String(Math.round(r.requests.average)).padStart(7)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  errors ${r.errors + r.non2xx}${cpu}`)
  return r.requests.average
}
const which = (process.env.ONLY ?? 'direct,unix,tcp,uwsgi,replyfrom').split(',')
const sock = `/tmp/h4x/app-${process.pid}.sock`
try {
  let direct
  if (which.includes('direct')) {
    const f = await start([`${HERE}fastify-hello.mjs`])
    direct = await run('fastify direct', `http://${f.addr.slice(6)}/`, f.c.pid)
    f.c.kill(); procs.pop()
  }
  const app = await start([CLI, 'app', `${HERE}hello-app.mjs`, '--listen', `unix:${sock}`, '--listen', 'tcp://127.0.0.1:0', ...(process.env.APPARGS ?? '').split(' ').filter(Boolean)])
  const tcp = app.addresses.find((a) => a.startsWith('tcp://'))
  for (const [name, up] of [['unix', `unix:${sock}`], ['tcp', tcp], ['uwsgi', `uwsgi+unix:${sock}`]]) {
    if (!which.includes(name) || up === null) continue
    const f = await start([...(process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/h4x/prof'] : []), CLI, 'front', '--listen', '127.0.0.1:0', '--no-access-log', '--upstream', up])
    const r = await run(`ferry front → app (${name})`, `http://${f.addr.slice(6)}/`, f.c.pid)
    if (direct) console.log(`   ratio to direct: ${(r / direct).toFixed(2)}`)
    f.c.kill('SIGINT'); await new Promise((res) => f.c.once('exit', res)); procs.splice(procs.indexOf(f.c), 1)
  }
  if (which.includes('replyfrom')) {
    const up = await start([`${HERE}fastify-hello.mjs`])
    const p = await start([`${HERE}replyfrom.mjs`, `http://${up.addr.slice(6)}`])
    const r = await run('fastify + reply-from → fastify', `http://${p.addr.slice(6)}/`, p.c.pid)
    if (direct) console.log(`   ratio to direct: ${(r / direct).toFixed(2)}`)
  }
} finally {
  for (const c of procs) c.kill('SIGKILL')
}
