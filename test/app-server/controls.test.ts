/**
 * Pool controls of `ferry app`, each against a real process: queue full → 503 + Retry-After,
 * timeout → 504 and the stuck worker replaced, throw → 500 with x-request-id, a non-Response
 * → 500, crash (process.exit) → 500 and the pool recovers, max-requests recycles threads,
 * max-memory kills a runaway thread and the pool recovers.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { startFerry } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

const HANDLER = 'test/fixtures/handlers/basic.ts'

test('queue full: 503 with Retry-After at once, the queued ones still answer', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--concurrency', '1', '--max-queue', '2'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  // 1 running + 2 queued fit; the 4th and 5th do not
  const replies = await Promise.all([0, 1, 2, 3, 4].map((i) => request(s, head(`/slow?ms=300&i=${i}`))))
  const statuses = replies.map((r) => r.status).sort()
  assert.deepEqual(statuses, [200, 200, 200, 503, 503])
  const full = replies.find((r) => r.status === 503)!
  assert.equal(full.get('retry-after'), '1')
  assert.equal(full.get('x-ferry-error'), 'FERRY_ERR_APP_QUEUE_FULL')
  assert.ok(full.get('x-request-id'))
})

test('timeout: 504, the stuck worker is terminated and replaced, the next request succeeds', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--timeout', '0.5'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const before = (await request(s, head('/thread'))).body.toString()
  const stuck = await request(s, head('/block?ms=20000', { requestId: 'stuck-1' }))
  assert.equal(stuck.status, 504)
  assert.equal(stuck.get('x-ferry-error'), 'FERRY_ERR_APP_TIMEOUT')
  assert.equal(stuck.get('x-request-id'), 'stuck-1')
  await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_REPLACED')
  const next = await request(s, head('/thread'))
  assert.equal(next.status, 200)
  assert.notEqual(next.body.toString(), before)
  // a slow (not stuck) handler past the timeout gets 504 but its worker stays
  const slow = await request(s, head('/slow?ms=1500'))
  assert.equal(slow.status, 504)
  const again = await request(s, head('/thread'))
  assert.equal(again.body.toString(), next.body.toString())
})

test('an idle node does not wake its main thread; the first request after the idle stretch still times out and replaces its stuck worker', async (t) => {
  // --timeout 0.5 s: the sweep runs every 125 ms while requests are about
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '2', '--timeout', '0.5'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  assert.equal((await request(s, head('/thread'))).status, 200)
  await new Promise((r) => setTimeout(r, 500)) // the sweep sees the pool idle and stops
  // the main thread's context switches: each time its event loop slept and was woken
  const switches = (): number => Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${app.pid}/task/${app.pid}/status`, 'utf8'))![1])
  const before = switches()
  await new Promise((r) => setTimeout(r, 1500))
  const idleWakes = switches() - before
  assert.ok(idleWakes <= 3, `${idleWakes} wake-ups of the main thread in 1.5 s of idle (a running sweep: ≥ 12)`)
  const t0 = Date.now()
  const stuck = await request(s, head('/block?ms=20000', { requestId: 'after-idle' }))
  assert.equal(stuck.status, 504)
  assert.equal(stuck.get('x-ferry-error'), 'FERRY_ERR_APP_TIMEOUT')
  assert.ok(Date.now() - t0 < 3000, `504 after ${Date.now() - t0} ms`)
  await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_REPLACED')
  assert.equal((await request(s, head('/thread'))).status, 200)
})

test('a request queued behind a stuck worker is re-dispatched, not failed', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--timeout', '0.5'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const stuck = request(s, head('/block?ms=20000'))
  await new Promise((r) => setTimeout(r, 100))
  // sent to the same (blocked) worker: it never takes it; after harakiri it runs on the new one
  const behind = request(s, head('/text'))
  assert.equal((await stuck).status, 504)
  const r = await behind
  assert.equal(r.status, 200)
  assert.equal(r.body.toString(), 'GET ')
})

test('throw → 500 with the request id, the stack is logged with it', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const r = await request(s, head('/throw', { requestId: 'boom-7' }))
  assert.equal(r.status, 500)
  assert.equal(r.get('x-request-id'), 'boom-7')
  assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_HANDLER_THREW')
  const line = await app.waitForLog((l) => l.reqId === 'boom-7')
  assert.equal(line.code, 'FERRY_ERR_APP_HANDLER_THREW')
  assert.match(String((line.err as { stack: string }).stack), /boom from the handler/)
  const n = await request(s, head('/not-a-response'))
  assert.equal(n.status, 500)
  assert.equal(n.get('x-ferry-error'), 'FERRY_ERR_APP_HANDLER_RESULT')
  assert.equal((await request(s, head('/text'))).status, 200)
})

test('crash (process.exit in the handler) → 500 for that request only; the pool serves the next', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const [crash, slow] = await Promise.all([
    request(s, head('/exit', { requestId: 'exit-1' })),
    new Promise((r) => setTimeout(r, 200)).then(() => request(s, head('/text')))
  ])
  assert.equal(crash.status, 500)
  assert.equal(crash.get('x-ferry-error'), 'FERRY_ERR_APP_WORKER_CRASHED')
  assert.equal(slow.status, 200)
  for (let i = 0; i < 3; i++) assert.equal((await request(s, head('/text'))).status, 200)
  await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED')
})

test('max-requests recycles a thread: thread ids change, no request fails', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--max-requests', '5'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const ids: string[] = []
  for (let i = 0; i < 16; i++) {
    const r = await request(s, head('/thread'))
    assert.equal(r.status, 200)
    ids.push(r.body.toString())
  }
  // 5 per thread: 4 different threads over 16 requests, each serving at most 5
  const counts = new Map<string, number>()
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1)
  assert.equal(counts.size, 4)
  for (const n of counts.values()) assert.ok(n <= 5)
  assert.deepEqual(ids.slice(0, 5), Array(5).fill(ids[0]))
})

test('max-memory: a thread past its heap limit dies, its request gets 500, the pool recovers', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--max-memory', '64'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const r = await request(s, head('/oom'))
  assert.equal(r.status, 500)
  assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_WORKER_CRASHED')
  assert.equal((await request(s, head('/text'))).status, 200)
})

test('--threads 0 runs the handler on the main thread', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  assert.equal((await request(s, head('/thread'))).body.toString(), '0')
  const r = await request(s, head('/echo', { method: 'POST' }), Buffer.alloc(300000, 9))
  assert.equal(r.body.length, 300000)
  assert.equal(app.listening.threads, 'main')
})

test('--threads 0: a handler error is logged with its request id, one "component" per line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-inline-log-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const logFile = join(dir, 'app.log')
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '0'], { logFile })
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const r = await request(s, head('/throw', { requestId: 'rid-inline-throw' }))
  assert.equal(r.status, 500)
  const line = await app.waitForLog((l) => l.reqId === 'rid-inline-throw')
  assert.equal(line.component, 'inline')
  // pino writes a child's bindings after its parent's: a repeated key would be two fields
  const raw = readFileSync(logFile, 'utf8').split('\n').find((l) => l.includes('"rid-inline-throw"'))!
  assert.equal(raw.split('"component":').length - 1, 1, raw)
})

test('--threads 1:3 grows under load and answers everything', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1:3', '--concurrency', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const replies = await Promise.all(Array.from({ length: 12 }, () => request(s, head('/slow?ms=300'))))
  const threads = new Set(replies.map((r) => r.body.toString()))
  for (const r of replies) assert.equal(r.status, 200)
  assert.ok(threads.size >= 2, `expected growth, served by ${[...threads]}`)
})
