/**
 * Response bodies of every kind cross from the handler to the main thread (structured clone
 * from a worker, by reference with --threads 0): the handler's own cached Uint8Array (4 and
 * 64 KiB) and ArrayBuffer bodies, string bodies, views (small Buffers, into Node's shared
 * 8 KiB pool; 20 KiB from the middle of a larger buffer) and
 * stream chunks, some enqueued twice. Each must arrive byte for byte on every request, a pool
 * view must carry only its own bytes, and the handler's cached buffers must stay intact (a
 * transfer instead of a copy would detach them: the next request would answer empty).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ownBytes } from '../../packages/app-server/src/loop.ts'
import { startFerry } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

const HANDLER = 'test/fixtures/handlers/bodies.ts'

for (const threads of ['1', '0']) {
  test(`response bodies arrive whole and cached bodies survive (--threads ${threads})`, async (t) => {
    const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', threads])
    t.after(() => app.stop())
    const s = await connect(app.addresses[0]!)
    t.after(() => s.destroy())
    for (let round = 0; round < 3; round++) {
      const cached = await request(s, head('/cached'))
      assert.equal(cached.status, 200)
      assert.deepEqual(cached.body, Buffer.from('c'.repeat(4096)), `cached Uint8Array, round ${round}`)
      const ab = await request(s, head('/cached-ab'))
      assert.deepEqual(ab.body, Buffer.from('a'.repeat(2048)), `cached ArrayBuffer, round ${round}`)
      const big = await request(s, head('/string'))
      assert.equal(big.body.length, 64 * 1024)
      assert.ok(big.body.equals(Buffer.from('b'.repeat(64 * 1024))))
      assert.equal((await request(s, head('/pooled'))).body.toString(), 'pooled body')
      assert.equal((await request(s, head('/pooled-big'))).body.toString(), 'p'.repeat(3000))
      const cachedBig = await request(s, head('/cached-big'))
      assert.ok(cachedBig.body.equals(Buffer.from('g'.repeat(64 * 1024))), `cached 64 KiB Uint8Array, round ${round}`)
      assert.ok((await request(s, head('/big-view'))).body.equals(Buffer.from('v'.repeat(20 * 1024))), `20 KiB view into a larger buffer, round ${round}`)
      const streamed = await request(s, head('/stream'))
      assert.equal(streamed.body.toString(), `${'s'.repeat(5000)}${'c'.repeat(4096)}${'c'.repeat(4096)}${'g'.repeat(64 * 1024)}tail`)
    }
    // the handler's cached buffers were copied, never transferred away (detached = length 0)
    assert.equal((await request(s, head('/cached-len'))).body.toString(), `4096 2048 ${64 * 1024} ${20 * 1024 + 2000}`)
  })
}

test('ownBytes: a view goes as a copy of just its bytes — a Buffer view too —, a whole buffer as it is', () => {
  // a small Buffer is a view into Node's shared 8 KiB pool: a clone of it would copy the pool
  const pooled = Buffer.from('pooled body')
  assert.ok(pooled.buffer.byteLength > pooled.byteLength)
  const p = ownBytes(pooled)
  assert.equal(p.buffer.byteLength, 11)
  assert.notEqual(p.buffer, pooled.buffer)
  assert.equal(Buffer.from(p).toString(), 'pooled body')
  const slab = new Uint8Array(30 * 1024).fill(7)
  const v = ownBytes(slab.subarray(1000, 1000 + 20 * 1024))
  assert.equal(v.buffer.byteLength, 20 * 1024)
  assert.ok(v.every((b) => b === 7))
  const whole = new Uint8Array(4096)
  assert.equal(ownBytes(whole), whole)
})
