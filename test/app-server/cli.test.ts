/**
 * `ferry app` as operators run it: stale vs live unix socket files, configuration from a
 * file and from FERRY_APP_* variables, bad options, --help, the stats endpoint, the bin's
 * start-up (node flags).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import net from 'node:net'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { test } from 'node:test'
import { binPrologue, NODE_FLAGS } from '../../packages/cli/src/node-flags.ts'
import { startFerry, tempDir } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

const BIN = 'packages/cli/dist/bin.js'
const HANDLER = 'test/fixtures/handlers/basic.ts'

test('a stale unix socket file is replaced; a live one is an error, not a takeover', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const sock = join(tmp.dir, 'app.sock')
  // a socket file nobody accepts on: bind a server, then drop it without unlinking
  const stale = net.createServer()
  await new Promise<void>((resolve) => stale.listen(sock, resolve))
  const handle = (stale as unknown as { _handle: { close (): void } })._handle
  handle.close()
  const app = await startFerry(['app', HANDLER, '--listen', `unix:${sock}`, '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(`unix:${sock}`)
  t.after(() => s.destroy())
  assert.equal((await request(s, head('/text'))).status, 200)
  // a second server on the same live socket must refuse
  const second = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--listen', `unix:${sock}`, '--threads', '1'], { encoding: 'utf8', timeout: 20000 })
  assert.equal(second.status, 1)
  assert.match(second.stdout, /FERRY_ERR_APP_ADDRESS_IN_USE/)
  // and the first still serves
  assert.equal((await request(s, head('/text'))).status, 200)
})

test('tcp address in use → FERRY_ERR_APP_ADDRESS_IN_USE, exit 1', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  t.after(() => app.stop())
  const second = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--listen', app.addresses[0]!, '--threads', '1'], { encoding: 'utf8', timeout: 20000 })
  assert.equal(second.status, 1)
  assert.match(second.stdout, /FERRY_ERR_APP_ADDRESS_IN_USE/)
})

test('config file and FERRY_APP_* variables; flags win over both', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const config = join(tmp.dir, 'app.json')
  writeFileSync(config, JSON.stringify({ handler: HANDLER, listen: ['tcp://127.0.0.1:0'], threads: '1', maxQueue: 0, concurrency: 1 }))
  const app = await startFerry(['app', '--config', config, '--threads', '2'], { env: { FERRY_APP_LOG_LEVEL: 'warn', FERRY_APP_MAX_QUEUE: '0' } })
  t.after(() => app.stop())
  assert.equal(app.listening.threads, '2:2')
  // FERRY_APP_LOG_LEVEL=warn: the "listening" line is written anyway (a contract), other info lines are not
  assert.equal(app.logs.filter((l) => l.level === 30 && l.msg !== 'listening').length, 0)
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  // concurrency 1 × 2 threads, max-queue 0: the third concurrent request is refused at once
  const replies = await Promise.all([0, 1, 2].map(() => request(s, head('/slow?ms=300'))))
  assert.deepEqual(replies.map((r) => r.status).sort(), [200, 200, 503])
})

test('bad options exit 2 with a coded message; --help documents every flag', () => {
  const bad = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--threads', '3:1'], { encoding: 'utf8' })
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /FERRY_ERR_APP_OPTIONS: .*threads/)
  const unknown = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--nope'], { encoding: 'utf8' })
  assert.equal(unknown.status, 2)
  const help = execFileSync(process.execPath, [BIN, 'app', '--help'], { encoding: 'utf8' })
  for (const flag of ['--listen', '--socket-mode', '--threads', '--concurrency', '--max-queue', '--timeout', '--max-requests',
    '--max-requests-jitter', '--max-uncaught', '--max-memory', '--graceful-timeout', '--stats', '--log-level', '--config', 'harakiri', 'FERRY_APP_', '--direct']) {
    assert.ok(help.includes(flag), flag)
  }
  const badDirect = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--direct=-1'], { encoding: 'utf8' })
  assert.equal(badDirect.status, 2)
  assert.match(badDirect.stderr, /FERRY_ERR_APP_OPTIONS: .*direct must be a number >= 0/)
})

test('--direct from the config file and FERRY_APP_DIRECT; the flag wins', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const config = join(tmp.dir, 'app.json')
  writeFileSync(config, JSON.stringify({ handler: HANDLER, listen: [`unix:${join(tmp.dir, 'app.sock')}`], threads: '1', direct: 3 }))
  for (const [args, env, want] of [[[], {}, 3], [[], { FERRY_APP_DIRECT: '2' }, 2], [['--direct', '1'], { FERRY_APP_DIRECT: '2' }, 1]] as const) {
    const app = await startFerry(['app', '--config', config, ...args], { env })
    const direct = app.listening.direct as Array<{ thread: number, addresses: string[] }>
    assert.deepEqual(direct.map((d) => d.addresses[0]), Array.from({ length: want }, (_, i) => `unix:${join(tmp.dir, 'app.sock')}.${i + 1}`))
    await app.stop()
  }
})

test('a handler module that fails to load: exit 1 with FERRY_ERR_APP_HANDLER_LOAD', () => {
  const r = spawnSync(process.execPath, [BIN, 'app', 'test/fixtures/handlers/does-not-exist.ts', '--listen', 'tcp://127.0.0.1:0', '--threads', '1'], { encoding: 'utf8', timeout: 20000 })
  assert.equal(r.status, 1)
  assert.match(r.stdout, /FERRY_ERR_APP_HANDLER_LOAD/)
})

test('--stats serves Prometheus text with requests, pool and stream figures', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '2', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const statsLine = await app.waitForLog((l) => l.msg === 'stats listening')
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  await request(s, head('/text'))
  await request(s, head('/text'))
  await request(s, head('/nope'))
  const slow = request(s, head('/slow?ms=500'))
  await new Promise((r) => setTimeout(r, 150))
  const url = `http://${String(statsLine.address).replace('tcp://', '')}/metrics`
  const res = await fetch(url)
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  assert.match(text, /^ferry_app_requests_total\{status="200"\} 2$/m)
  assert.match(text, /^ferry_app_requests_total\{status="404"\} 1$/m)
  assert.match(text, /^ferry_app_requests_in_flight 1$/m)
  assert.match(text, /^ferry_app_queue_depth 0$/m)
  assert.match(text, /^ferry_app_threads 2$/m)
  assert.match(text, /^ferry_app_threads_busy 1$/m)
  assert.match(text, /^ferry_app_request_duration_seconds_count 3$/m)
  assert.match(text, /^ferry_app_native_connections 1$/m)
  assert.match(text, /^ferry_app_native_streams\{connection="0"\} 1$/m)
  assert.equal((await slow).status, 200)
  assert.equal((await fetch(url.replace('/metrics', '/'))).status, 404)
})

test('`ferry` as npm links it (node_modules/.bin/ferry) execs node with the flags of node-flags.ts in the same process', async (t) => {
  assert.ok(readFileSync('packages/cli/bin/ferry.js', 'utf8').startsWith(binPrologue()), 'bin/ferry.js starts with binPrologue() of NODE_FLAGS')
  // --help says which flags it starts node with, and how to give others
  const help = execFileSync(resolve('node_modules/.bin/ferry'), ['--help'], { encoding: 'utf8' })
  assert.ok(help.includes(`starts node with ${NODE_FLAGS.join(' ')}`), help)
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const sock = join(tmp.dir, 'app.sock')
  // executed as a file (its first line picks /bin/sh) through the link `npm install` made, as
  // `npx ferry` and a systemd ExecStart= run it
  const app = await startFerry(['app', HANDLER, '--listen', `unix:${sock}`, '--threads', '1'], { command: resolve('node_modules/.bin/ferry') })
  t.after(() => app.stop())
  // exec, not a child: the pid that logs (and that a supervisor signals) is the one started
  assert.equal(app.listening.pid, app.pid)
  const argv = readFileSync(`/proc/${app.pid}/cmdline`, 'utf8').split('\0')
  const script = argv.findIndex((a) => a.endsWith('ferry'))
  assert.deepEqual(argv.slice(1, script), [...NODE_FLAGS])
  assert.equal(basename(argv[0]!), 'node')
  const s = await connect(`unix:${sock}`)
  t.after(() => s.destroy())
  assert.equal((await request(s, head('/text'))).status, 200)
  assert.equal(await app.stop(), 0)
})
