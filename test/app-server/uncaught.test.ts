/**
 * Uncaught exceptions and unhandled rejections in worker threads: one raised by a request's
 * own async work fails that request (500 FERRY_ERR_APP_UNCAUGHT, or a reset after its head)
 * and the thread lives on with its other requests (also when it comes after a 504, its
 * handler still running); one that belongs to no running request ends the thread and the
 * pool replaces it; --max-uncaught recycles a thread after n of them; --max-uncaught 0 is
 * Node's default (the thread dies). With --threads 0 the same on the main thread, the process
 * standing for the thread: past --max-uncaught it drains and exits 1; an unowned one ends it
 * with a fatal log line.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type FerryProcess, startFerry } from '../helpers/proc.ts'
import { connect, head, type Reply, request } from './client.ts'

const HANDLER = 'test/fixtures/handlers/uncaught.ts'

async function metrics (app: FerryProcess): Promise<string> {
  const line = await app.waitForLog((l) => l.msg === 'stats listening')
  const res = await fetch(`http://${String(line.address).replace('tcp://', '')}/metrics`)
  return res.text()
}

function event (text: string, name: string): number {
  const m = new RegExp(`^ferry_app_workers_events_total\\{event="${name}"\\} (\\d+)$`, 'm').exec(text)
  assert.ok(m !== null, `no ${name} event in ${text}`)
  return Number(m[1])
}

function assertUncaught (r: Reply, requestId: string): void {
  assert.equal(r.status, 500, requestId)
  assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_UNCAUGHT', requestId)
  assert.equal(r.get('x-request-id'), requestId)
}

/** Sends the requests [path, request id] at once; each must fail alone with FERRY_ERR_APP_UNCAUGHT. */
async function allUncaught (s: Parameters<typeof request>[0], faults: readonly (readonly [string, string])[]): Promise<void> {
  const replies = await Promise.all(faults.map(([path, requestId]) => request(s, head(path, { requestId }))))
  for (let i = 0; i < faults.length; i++) assertUncaught(replies[i]!, faults[i]![1])
}

test('a throw in setImmediate or setTimeout, an unawaited rejection: 500 for that request only, the thread and its other requests go on', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const before = (await request(s, head('/thread'))).body.toString()
  // a slow good request is in flight on the same (only) thread while the others fail
  const slow = request(s, head('/slow?ms=800', { requestId: 'slow-1' }))
  await allUncaught(s, [['/immediate', 'imm-1'], ['/timeout', 'tmo-1'], ['/reject', 'rej-1']])
  const good = await slow
  assert.equal(good.status, 200)
  assert.equal(good.body.toString(), `slow ${before}`)
  assert.equal((await request(s, head('/thread'))).body.toString(), before, 'the same thread serves on')
  for (const [id, origin, text] of [['imm-1', 'uncaughtException', /thrown in setImmediate/], ['tmo-1', 'uncaughtException', /thrown in setTimeout/], ['rej-1', 'unhandledRejection', /rejected, never awaited/]] as const) {
    const line = await app.waitForLog((l) => l.reqId === id && l.code === 'FERRY_ERR_APP_UNCAUGHT')
    assert.equal(line.level, 50)
    assert.equal(line.origin, origin)
    assert.match(String((line.err as { stack: string }).stack), text)
  }
  assert.equal(app.logs.filter((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED').length, 0)
  const text = await metrics(app)
  assert.equal(event(text, 'uncaught'), 3)
  assert.equal(event(text, 'crashed'), 0)
  assert.equal(event(text, 'recycled'), 0)
})

test('a throw inside a queueMicrotask callback: 500 for that request only, the thread goes on; queued callbacks that do not throw run in order', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const before = (await request(s, head('/thread'))).body.toString()
  const slow = request(s, head('/slow?ms=500', { requestId: 'slow-m' }))
  const r = await request(s, head('/microtask', { requestId: 'micro-1' }))
  assertUncaught(r, 'micro-1')
  const line = await app.waitForLog((l) => l.reqId === 'micro-1' && l.code === 'FERRY_ERR_APP_UNCAUGHT')
  assert.match(String((line.err as { message: string }).message), /thrown in queueMicrotask/)
  assert.equal((await slow).body.toString(), `slow ${before}`, 'the other request on the thread finished')
  const ok = await request(s, head('/microtask-ok'))
  assert.equal(ok.status, 200)
  assert.equal(ok.body.toString(), '1,2')
  assert.equal((await request(s, head('/thread'))).body.toString(), before, 'the same thread serves on')
  const text = await metrics(app)
  assert.equal(event(text, 'uncaught'), 1)
  assert.equal(event(text, 'crashed'), 0)
})

test('after the head the request is reset; after a complete response (waitUntil work) or after a 504 (handler still running) only logged; the thread stays', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--timeout', '0.3', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const before = (await request(s, head('/thread'))).body.toString()
  await assert.rejects(request(s, head('/after-head', { requestId: 'head-1' })))
  const line = await app.waitForLog((l) => l.reqId === 'head-1' && l.code === 'FERRY_ERR_APP_UNCAUGHT')
  assert.equal(line.answered, 'failed after its head')
  const w = await request(s, head('/wait-until', { requestId: 'wait-1' }))
  assert.equal(w.status, 200)
  assert.equal(w.body.toString(), `answered ${before}`)
  const late = await app.waitForLog((l) => l.reqId === 'wait-1' && l.code === 'FERRY_ERR_APP_UNCAUGHT')
  assert.equal(late.answered, 'response was complete')
  const timedOut = await request(s, head('/late-throw', { requestId: 'late-1' }))
  assert.equal(timedOut.status, 504)
  const after = await app.waitForLog((l) => l.reqId === 'late-1' && l.code === 'FERRY_ERR_APP_UNCAUGHT')
  assert.equal(after.answered, 'already answered')
  assert.equal((await request(s, head('/thread'))).body.toString(), before)
  const text = await metrics(app)
  assert.equal(event(text, 'uncaught'), 3)
  assert.equal(event(text, 'crashed'), 0)
})

test('an error no running request owns (a module-level timer, work a settled request left behind) still ends the thread; the pool replaces it', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const first = await request(s, head('/arm-global'))
  assert.equal(first.status, 200)
  await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED' && l.msg === 'worker crashed; replacing it')
  const own = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED' && l.origin === 'uncaughtException')
  assert.match(String((own.err as { stack: string }).stack), /thrown by a module-level timer/)
  const second = await request(s, head('/leave-behind'))
  assert.equal(second.status, 200)
  assert.notEqual(second.body.toString(), first.body.toString(), 'a new thread answers')
  await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED' && l.msg === 'worker crashed; replacing it' && l.threadId === Number(second.body.toString()))
  const third = await request(s, head('/thread'))
  assert.equal(third.status, 200)
  assert.notEqual(third.body.toString(), second.body.toString())
  const text = await metrics(app)
  assert.equal(event(text, 'crashed'), 2)
  assert.equal(event(text, 'uncaught'), 0)
  assert.match(text, /^ferry_app_threads 1$/m)
})

test('--max-uncaught 2 recycles the thread after its second one; no other request fails', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--max-uncaught', '2', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const first = (await request(s, head('/thread'))).body.toString()
  // in flight on the first thread while it reaches its limit: it finishes there
  const slow = request(s, head('/slow?ms=800'))
  assertUncaught(await request(s, head('/immediate', { requestId: 'u-1' })), 'u-1')
  assertUncaught(await request(s, head('/timeout', { requestId: 'u-2' })), 'u-2')
  const recycled = await app.waitForLog((l) => l.msg === 'recycling worker (max-uncaught)')
  assert.equal(recycled.threadId, Number(first))
  assert.equal(recycled.uncaught, 2)
  const next = await Promise.all([0, 1, 2].map(() => request(s, head('/thread'))))
  for (const r of next) {
    assert.equal(r.status, 200)
    assert.notEqual(r.body.toString(), first, 'new requests go to the replacement')
  }
  const good = await slow
  assert.equal(good.status, 200)
  assert.equal(good.body.toString(), `slow ${first}`)
  const text = await metrics(app)
  assert.equal(event(text, 'uncaught'), 2)
  assert.equal(event(text, 'recycled'), 1)
  assert.equal(event(text, 'crashed'), 0)
  assert.match(text, /^ferry_app_requests_total\{status="500"\} 2$/m)
})

test('--max-uncaught 0: Node\'s default, the thread dies with the request (FERRY_ERR_APP_WORKER_CRASHED)', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--max-uncaught', '0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const first = (await request(s, head('/thread'))).body.toString()
  const r = await request(s, head('/immediate'))
  assert.equal(r.status, 500)
  assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_WORKER_CRASHED')
  const next = await request(s, head('/thread'))
  assert.equal(next.status, 200)
  assert.notEqual(next.body.toString(), first)
})

// ── handlers on the main thread (--threads 0): the same attribution, the process for a thread ──

test('--threads 0: a throw in setImmediate or setTimeout, an unawaited rejection, a queueMicrotask throw: 500 for that request only, the node goes on', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '0', '--stats', 'tcp://127.0.0.1:0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  assert.equal((await request(s, head('/thread'))).body.toString(), '0', 'the handler runs on the main thread')
  const slow = request(s, head('/slow?ms=600', { requestId: 'slow-0' }))
  await allUncaught(s, [['/immediate', 'imm-0'], ['/timeout', 'tmo-0'], ['/reject', 'rej-0'], ['/microtask', 'mic-0']])
  assert.equal((await slow).status, 200)
  assert.equal((await request(s, head('/thread'))).status, 200)
  for (const id of ['imm-0', 'tmo-0', 'rej-0', 'mic-0']) {
    const line = await app.waitForLog((l) => l.reqId === id && l.code === 'FERRY_ERR_APP_UNCAUGHT')
    assert.equal(line.level, 50)
  }
  const text = await metrics(app)
  assert.equal(event(text, 'uncaught'), 4)
  assert.equal(app.proc.exitCode, null, 'the process lives')
})

test('--threads 0: an error no running request owns (work a settled request left behind) ends the process with one fatal line (code, origin, stack)', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '0'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  // work left running after a complete response (its request has settled: nobody to answer)
  assert.equal((await request(s, head('/leave-behind'))).status, 200)
  assert.equal(await app.exited, 1)
  const fatal = app.logs.filter((l) => l.level === 60)
  assert.equal(fatal.length, 1, JSON.stringify(fatal))
  assert.equal(fatal[0]!.code, 'FERRY_ERR_APP_UNCAUGHT')
  assert.equal(fatal[0]!.origin, 'uncaughtException')
  assert.match(String((fatal[0]!.err as { stack: string }).stack), /thrown by work a finished request left behind/)
})

test('--threads 0 --max-uncaught 2: after the second one the node drains (a request in flight finishes) and exits 1', async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '0', '--max-uncaught', '2'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const slow = request(s, head('/slow?ms=500'))
  assertUncaught(await request(s, head('/immediate', { requestId: 'm-1' })), 'm-1')
  assertUncaught(await request(s, head('/timeout', { requestId: 'm-2' })), 'm-2')
  const line = await app.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('max-uncaught reached'))
  assert.equal(line.maxUncaught, 2)
  const good = await slow
  assert.equal(good.status, 200)
  assert.equal(await app.exited, 1)
  assert.ok(app.logs.some((l) => l.msg === 'stopped' && l.drained === true))
})
