// `npm start`: the ferry demo. Two `ferry app` nodes run examples/hello (a TypeScript fetch
// handler) on unix sockets in a temp dir; one `ferry front` on 127.0.0.1:8080 (PORT or
// FERRY_DEMO_LISTEN to change it) serves examples/public/ and forwards everything else to
// the two nodes. Ctrl-C stops all three (SIGTERM: graceful drain).
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const bin = join(root, 'packages', 'cli', 'dist', 'bin.js')
if (!existsSync(bin)) {
  console.error('ferry is not built yet: run `npm install` (or `npm run build`) first')
  process.exit(1)
}
// the `ferry` command's node flags (its bin execs node with them)
const { NODE_FLAGS } = await import(new URL('../packages/cli/dist/node-flags.js', import.meta.url).href)
const listen = process.env.FERRY_DEMO_LISTEN ?? `127.0.0.1:${process.env.PORT ?? '8080'}`
const dir = mkdtempSync(join(tmpdir(), 'ferry-demo-'))
const children = []

/** Start `ferry <args>`; resolve with its bound addresses from the "listening" log line. */
function start (name, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, bin, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    let ready = false
    createInterface({ input: child.stdout }).on('line', (line) => {
      let rec = null
      try { rec = JSON.parse(line) } catch { /* not JSON: print as is */ }
      if (!ready && rec?.msg === 'listening') {
        ready = true
        resolve(rec.addresses)
      }
      if (process.env.FERRY_DEMO_QUIET === undefined) process.stdout.write(`[${name}] ${line}\n`)
    })
    child.on('exit', (code, signal) => {
      if (!ready) reject(new Error(`${name} exited (${signal ?? code}) before listening`))
      else if (!stopping) {
        console.error(`[${name}] exited (${signal ?? code}); stopping the demo`)
        stop(1)
      }
    })
  })
}

let stopping = false
function stop (code = 0) {
  if (stopping) return
  stopping = true
  let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length
  const done = () => {
    rmSync(dir, { recursive: true, force: true })
    process.exit(code)
  }
  if (left === 0) return done()
  for (const c of children) {
    if (c.exitCode !== null || c.signalCode !== null) continue
    c.once('exit', () => { if (--left === 0) done() })
    c.kill('SIGTERM')
  }
  setTimeout(() => { for (const c of children) c.kill('SIGKILL'); done() }, 10000).unref()
}
process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))

try {
  const handler = join(root, 'examples', 'hello', 'app.ts')
  const nodes = await Promise.all([1, 2].map((i) =>
    start(`app${i}`, ['app', handler, '--listen', `unix:${join(dir, `app${i}.sock`)}`, '--threads', '1:2'])))
  const front = await start('front', [
    'front', '--listen', listen,
    ...nodes.flatMap((addrs) => ['--upstream', addrs[0]]),
    '--static', `${join(root, 'examples', 'public')}:/`
  ])
  const url = front[0].replace(/^tcp:\/\//, 'http://')
  console.log(`\nferry demo is up: open ${url}/\n  ${url}/api/hello   JSON from a worker thread\n  curl -d 'hi' ${url}/api/echo\n  curl -N ${url}/api/stream   a streamed response\n  ${url}/api/slow?ms=500\nCtrl-C to stop.\n`)
} catch (err) {
  console.error(err.message)
  stop(1)
}
