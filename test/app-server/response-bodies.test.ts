/**
 * Response bodies of every kind cross from the handler to the main thread (structured clone
 * from a worker, by reference with --threads 0): the handler's own cached Uint8Array and
 * ArrayBuffer bodies, string bodies, small Buffers (views into Node's shared 8 KiB pool) and
 * stream chunks, some enqueued twice. Each must arrive byte for byte on every request, a pool
 * view must carry only its own bytes, and the handler's cached buffers must stay intact (a
 * transfer instead of a copy would detach them: the next request would answer empty).
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
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
      const streamed = await request(s, head('/stream'))
      assert.equal(streamed.body.toString(), `${'s'.repeat(5000)}${'c'.repeat(4096)}${'c'.repeat(4096)}tail`)
    }
    // the handler's cached buffers were copied, never transferred away (detached = length 0)
    assert.equal((await request(s, head('/cached-len'))).body.toString(), '4096 2048')
  })
}
