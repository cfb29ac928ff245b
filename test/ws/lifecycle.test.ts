/**
 * How WebSockets end: the front's --ws-idle-timeout (1001 'idle timeout'; pings count as
 * traffic), a node killed with SIGKILL (1012), a handler throwing in its async work (1011 for
 * that socket only; with --max-uncaught 0 the thread dies and takes its sockets), and the
 * front shutting down (1001 to every client).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, pairFor } from './helpers.ts'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

test('--ws-idle-timeout 300ms: an idle socket is closed 1001 "idle timeout"; one pinging every 100 ms stays open', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t, { front: ['--ws-idle-timeout', '300ms'] })
  const idle = await connect(`ws://${pair.host}/echo`)
  const busy = await connect(`ws://${pair.host}/echo`)
  let pongs = 0
  busy.ws.on('pong', () => { pongs++ })
  const timer = setInterval(() => busy.ws.ping('keep'), 100)
  t.after(() => clearInterval(timer))
  const opened = Date.now()
  assert.deepEqual(await idle.closed, { code: 1001, reason: 'idle timeout' })
  // the pinging socket outlives the idle one by far: still open at 1.2 s and echoing
  while (Date.now() - opened < 1300) await sleep(50)
  assert.equal(busy.ws.readyState, 1, 'still open after 1.3 s')
  assert.ok(pongs >= 5, `pongs came back (${pongs})`)
  busy.ws.send('alive')
  assert.equal((await busy.next()).data.toString(), 'alive')
  // once it stops, it is idle too
  clearInterval(timer)
  assert.deepEqual(await busy.closed, { code: 1001, reason: 'idle timeout' })
  await pair.front.waitForLog((l) => l.msg === 'websocket idle: closing')
})

test('the app node killed with SIGKILL: the client socket closes with 1012', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t)
  const clients = await Promise.all([1, 2, 3].map(() => connect(`ws://${pair.host}/echo`)))
  for (const c of clients) {
    c.ws.send('before')
    assert.equal((await c.next()).data.toString(), 'before')
  }
  pair.app.proc.kill('SIGKILL')
  assert.equal(await pair.app.exited, 'SIGKILL')
  for (const c of clients) assert.deepEqual(await c.closed, { code: 1012, reason: 'service restart' })
})

test('a WebSocket handler throwing in its async work: that client gets 1011, the thread and its other sockets go on', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t)
  const bystander = await connect(`ws://${pair.host}/echo`)
  const c = await connect(`ws://${pair.host}/crash`)
  c.ws.send('boom')
  assert.deepEqual(await c.closed, { code: 1011, reason: 'server error' })
  // --max-uncaught (default on): the throw is the socket's request's, it alone fails
  const line = await pair.app.waitForLog((l) => l.code === 'FERRY_ERR_APP_UNCAUGHT')
  assert.equal((line.err as { message: string }).message, 'injected crash in a WebSocket handler')
  // the other socket on the same (only) thread is unaffected, and new sockets echo
  bystander.ws.send('still here')
  assert.equal((await bystander.next()).data.toString(), 'still here')
  const d = await connect(`ws://${pair.host}/echo`)
  assert.equal(d.headers['x-thread'], bystander.headers['x-thread'], 'the same thread serves it')
  d.ws.send('after the crash')
  assert.equal((await d.next()).data.toString(), 'after the crash')
  for (const x of [bystander, d]) {
    x.ws.close(1000)
    assert.deepEqual(await x.closed, { code: 1000, reason: '' })
  }
  assert.equal(pair.app.proc.exitCode, null)
})

test('--max-uncaught 0: the throw ends the thread, its sockets get 1011, a fresh thread serves new sockets', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t, { app: ['--max-uncaught', '0'] })
  const bystander = await connect(`ws://${pair.host}/echo`)
  const c = await connect(`ws://${pair.host}/crash`)
  c.ws.send('boom')
  assert.deepEqual(await c.closed, { code: 1011, reason: 'server error' })
  // the socket on the dead thread (--threads 1: the same thread) went with it
  assert.deepEqual(await bystander.closed, { code: 1011, reason: 'server error' })
  const d = await connect(`ws://${pair.host}/echo`)
  assert.notEqual(d.headers['x-thread'], bystander.headers['x-thread'], 'a new thread')
  d.ws.send('after the crash')
  assert.equal((await d.next()).data.toString(), 'after the crash')
  d.ws.close(1000)
  assert.deepEqual(await d.closed, { code: 1000, reason: '' })
  assert.equal(pair.app.proc.exitCode, null)
})

test('the front SIGTERMed: every client gets 1001, the front exits 0', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t)
  const clients = await Promise.all(Array.from({ length: 5 }, () => connect(`ws://${pair.host}/echo`)))
  for (const c of clients) {
    c.ws.send('hi')
    assert.equal((await c.next()).data.toString(), 'hi')
  }
  pair.front.proc.kill('SIGTERM')
  for (const c of clients) assert.deepEqual(await c.closed, { code: 1001, reason: 'server shutting down' })
  assert.equal(await pair.front.exited, 0)
  // the node saw the sockets closed and still runs
  assert.equal(pair.app.proc.exitCode, null)
})
