/**
 * Health under load: kill -9 a node → only requests in flight on it may fail (idempotent
 * ones are retried on the other node), it is ejected, and re-admitted once it is back.
 * SIGTERM a node (GOAWAY drain) → zero failed requests.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, sleep, startFront, startNode, tempDir } from './helpers.ts'

const hooks = fileHooks(after)

interface Load {
  stop (): Promise<{ ok: number, failed: number, byNode: Record<string, number> }>
  byNode: Record<string, number>
}

function load (url: string, concurrency: number): Load {
  let running = true
  let ok = 0
  let failed = 0
  const byNode: Record<string, number> = {}
  const worker = async (): Promise<void> => {
    while (running) {
      try {
        const res = await fetchRaw(`${url}/echo`)
        if (res.status === 200) {
          ok++
          const n = res.headers['x-node'] as string
          byNode[n] = (byNode[n] ?? 0) + 1
        } else failed++
      } catch {
        failed++
      }
    }
  }
  const all = Promise.all(Array.from({ length: concurrency }, worker))
  return {
    byNode,
    async stop () {
      running = false
      await all
      return { ok, failed, byNode }
    }
  }
}

test('kill -9 a node under load: at most its in-flight requests fail; ejected; re-admitted on restart', async (t) => {
  const dir = tempDir(hooks)
  const a = await startNode(hooks, `unix:${join(dir, 'a.sock')}`, 'a')
  const bPath = `unix:${join(dir, 'b.sock')}`
  const b = await startNode(hooks, bPath, 'b', ['--delay', '2'])
  const front = await startFront(hooks, ['--upstream', a.addresses[0]!, '--upstream', b.addresses[0]!, '--health-interval', '200ms'])
  const url = baseUrl(front.addresses[0]!)
  for (let i = 0; i < 10; i++) await fetchRaw(`${url}/hello`)
  const CONC = 8
  const l1 = load(url, CONC)
  await sleep(400)
  b.child.kill('SIGKILL')
  await b.exited
  const atKill = { ...l1.byNode }
  await sleep(600)
  const mid = { ...l1.byNode }
  const r1 = await l1.stop()
  t.diagnostic(`during kill: ${JSON.stringify(r1)}`)
  assert.ok(r1.failed <= CONC, `${r1.failed} requests failed; only the ${CONC} in flight may`)
  assert.ok((mid.b ?? 0) - (atKill.b ?? 0) <= CONC, 'the dead node got no new requests')
  assert.ok(mid.a! > atKill.a!, 'the live node took the load')

  await startNode(hooks, bPath, 'b')
  let back = false
  for (let i = 0; i < 100 && !back; i++) {
    const res = await fetchRaw(`${url}/hello`)
    assert.equal(res.status, 200)
    if (res.headers['x-node'] === 'b') back = true
    else await sleep(30)
  }
  assert.ok(back, 'the restarted node was re-admitted')
})

test('SIGTERM a node under load (GOAWAY drain): zero failed requests', async (t) => {
  const dir = tempDir(hooks)
  const a = await startNode(hooks, `unix:${join(dir, 'a.sock')}`, 'a')
  const b = await startNode(hooks, `unix:${join(dir, 'b.sock')}`, 'b', ['--delay', '5'])
  const front = await startFront(hooks, ['--upstream', a.addresses[0]!, '--upstream', b.addresses[0]!])
  const url = baseUrl(front.addresses[0]!)
  for (let i = 0; i < 10; i++) await fetchRaw(`${url}/hello`)
  const l = load(url, 8)
  await sleep(400)
  b.child.kill('SIGTERM')
  const code = await b.exited
  await sleep(400)
  const r = await l.stop()
  t.diagnostic(`drain: ${JSON.stringify(r)} (node b exit ${code})`)
  assert.equal(code, 0)
  assert.equal(r.failed, 0)
  assert.ok((r.byNode.b ?? 0) > 0 && r.byNode.a! > 0)
})

test('SIGTERM to the front: requests in flight finish, then it exits 0', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!])
  const url = baseUrl(front.addresses[0]!)
  const inflight = fetchRaw(`${url}/slow?ms=800`)
  await sleep(200)
  front.child.kill('SIGTERM')
  const res = await inflight
  assert.equal(res.status, 200)
  assert.equal(JSON.parse(res.body.toString()).slept, 800)
  assert.equal(await front.exited, 0)
})

test('health checks: an idle session gets a PING every interval, one that carries traffic none', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'p.sock')}`, 'p')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--sessions', '1', '--health-interval', '100ms'])
  const url = baseUrl(front.addresses[0]!)
  const pings = async (): Promise<number> => JSON.parse((await fetchRaw(`${url}/stats`)).body.toString()).pings as number
  const p0 = await pings()
  await sleep(1000)
  const p1 = await pings()
  // idle: one PING per 100 ms (the node's own answers to /stats skip one or two)
  assert.ok(p1 - p0 >= 6, `idle: ${p1 - p0} PINGs in 1 s`)
  // a request every ≈ 20 ms: the session has read from the node since every check
  const end = Date.now() + 1000
  while (Date.now() < end) {
    assert.equal((await fetchRaw(`${url}/hello`)).status, 200)
    await sleep(20)
  }
  const p2 = await pings()
  // (10 before connections that carry traffic were left alone; a stalled test process may let one slip in)
  assert.ok(p2 - p1 <= 3, `busy: ${p2 - p1} PINGs in 1 s`)
  // and idle again: the PINGs resume
  await sleep(700)
  const p3 = await pings()
  assert.ok(p3 - p2 >= 3, `idle again: ${p3 - p2} PINGs in 0.7 s`)
})

test('health checks: a node that stops answering after traffic is still found by its PING', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 's.sock')}`, 's')
  // the PING times out after --connect-timeout (1 s at least)
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--sessions', '1', '--health-interval', '100ms', '--connect-timeout', '1s'])
  const url = baseUrl(front.addresses[0]!)
  const end = Date.now() + 300
  while (Date.now() < end) assert.equal((await fetchRaw(`${url}/hello`)).status, 200)
  node.child.kill('SIGSTOP')
  try {
    // the first check may still see the traffic; the next one PINGs
    const failed = await front.waitFor((l) => l.msg === 'upstream health check failed', 3000)
    assert.equal(failed.code, 'FERRY_ERR_PING_TIMEOUT')
  } finally {
    node.child.kill('SIGCONT')
  }
})
