/**
 * Rolling restart with WebSockets: two app nodes behind one front, 20 open sockets; one node
 * is SIGTERMed with --graceful-timeout 1. Its sockets keep working through the grace period,
 * then get 1001; reconnecting lands on the other node (its FERRY_WS_NODE in the 101's
 * x-node header); the node exits 0; the other node's sockets keep working throughout.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'
import { type Client, connect, HANDLER } from './helpers.ts'

test('rolling restart: sockets on the SIGTERMed node get 1001 after the grace period and reconnect to the other node', { timeout: 45000 }, async (t) => {
  const tmp = tempDir('ferry-ws-roll-')
  const procs: FerryProcess[] = []
  const clients: Client[] = []
  t.after(async () => {
    for (const c of clients) c.ws.terminate()
    await Promise.all(procs.map((p) => p.stop(3000)))
    tmp.cleanup()
  })
  const node = async (name: string): Promise<FerryProcess> => {
    const p = await startFerry(['app', HANDLER, '--listen', `unix:${join(tmp.dir, `${name}.sock`)}`, '--threads', '1', '--graceful-timeout', '1'], { env: { FERRY_WS_NODE: name } })
    procs.push(p)
    return p
  }
  const [n1, n2] = await Promise.all([node('n1'), node('n2')])
  const front = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `unix:${join(tmp.dir, 'n1.sock')}`, '--upstream', `unix:${join(tmp.dir, 'n2.sock')}`, '--no-access-log'])
  procs.push(front)
  const url = `ws://${front.addresses[0]!.replace('tcp://', '')}/echo`

  // 20 sockets; the balancer spreads them, and a few more are opened if one node got none
  for (let i = 0; i < 20; i++) clients.push(await connect(url))
  for (let i = 0; i < 20 && !(clients.some((c) => c.headers['x-node'] === 'n1') && clients.some((c) => c.headers['x-node'] === 'n2')); i++) clients.push(await connect(url))
  const on1 = clients.filter((c) => c.headers['x-node'] === 'n1')
  const on2 = clients.filter((c) => c.headers['x-node'] === 'n2')
  assert.equal(on1.length + on2.length, clients.length, 'every 101 names its node')
  assert.ok(on1.length > 0 && on2.length > 0, `both nodes serve sockets (n1 ${on1.length}, n2 ${on2.length})`)
  t.diagnostic(`n1 ${on1.length} sockets, n2 ${on2.length}`)

  // n2's sockets are exercised all along: a round trip every 100 ms on each
  let rounds = 0
  let failures = 0
  let exercising = true
  const exercise = (async () => {
    while (exercising) {
      await Promise.all(on2.map(async (c, i) => {
        const msg = `n2 ${i} round ${rounds}`
        c.ws.send(msg)
        const m = await c.next().catch(() => null)
        if (m?.data.toString() !== msg) failures++
      }))
      rounds++
      await new Promise((r) => setTimeout(r, 100))
    }
  })()

  const n1Closes = on1.map((c) => c.closed)
  n1.proc.kill('SIGTERM')
  await n1.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('shutting down'))
  // during the grace period n1's sockets still work
  await Promise.all(on1.map(async (c, i) => {
    c.ws.send(`grace ${i}`)
    assert.equal((await c.next()).data.toString(), `grace ${i}`)
  }))
  // then every one of them is closed with 1001 by the node
  for (const closed of await Promise.all(n1Closes)) assert.deepEqual(closed, { code: 1001, reason: 'server shutting down' })
  await n1.waitForLog((l) => l.msg === 'graceful timeout passed: closing WebSockets (1001)')
  assert.equal(await n1.exited, 0, 'the node exits 0 once its sockets are closed')

  // reconnecting: every new socket is served by n2
  const again = await Promise.all(on1.map(() => connect(url)))
  clients.push(...again)
  for (const [i, c] of again.entries()) {
    assert.equal(c.headers['x-node'], 'n2')
    c.ws.send(`reconnected ${i}`)
    assert.equal((await c.next()).data.toString(), `reconnected ${i}`)
  }

  exercising = false
  await exercise
  assert.ok(rounds >= 5, `n2's sockets were exercised (${rounds} rounds)`)
  assert.equal(failures, 0, "every round trip on n2's sockets succeeded")
  for (const c of on2) assert.equal(c.ws.readyState, 1)
  // nothing crashed: the front and n2 still run, and no one logged a fatal line
  assert.equal(front.proc.exitCode, null)
  assert.equal(n2.proc.exitCode, null)
  for (const p of procs) assert.equal(p.logs.filter((l) => (l.level ?? 0) >= 60).length, 0)
  for (const c of [...on2, ...again]) {
    c.ws.close(1000)
    assert.deepEqual(await c.closed, { code: 1000, reason: '' })
  }
})
