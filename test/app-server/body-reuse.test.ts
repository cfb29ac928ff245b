/**
 * The pool reuses the buffers it copies request-body chunks into (body-buffers.ts): a chunk
 * kept for a re-run reaches its worker by copy, and the buffer serves a later request once
 * this one is done. Many uploads with distinct bytes, in rounds, some cut off mid-upload and
 * some echoed: every answer must hash exactly to the bytes its own request sent — a buffer
 * handed out while a batch could still copy it would show up as another request's bytes.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { startFerry } from '../helpers/proc.ts'
import { collect, connect, drained, head } from './client.ts'

const HANDLER = 'test/fixtures/handlers/basic.ts'
const PIECE = 16 * 1024

function upload (s: Awaited<ReturnType<typeof connect>>, path: string, pieces: Buffer[]): Promise<{ status: number, body: Buffer }> {
  const total = pieces.reduce((n, p) => n + p.byteLength, 0)
  const stream = s.request(head(path, { method: 'POST', bodyLength: total }), false)
  return collect(stream, async (st) => {
    for (const piece of pieces) {
      if (!st.write(piece)) await drained(st)
      // one piece per turn: each becomes its own DATA frame and body chunk
      await new Promise((resolve) => setImmediate(resolve))
    }
    st.end()
  })
}

/** An upload the client gives up on after its first piece (the pool cancels it and frees its copies). */
async function cutOff (s: Awaited<ReturnType<typeof connect>>, pieces: Buffer[]): Promise<void> {
  const stream = s.request(head('/sha', { method: 'POST', bodyLength: pieces.length * PIECE }), false)
  stream.write(pieces[0]!)
  await new Promise((resolve) => setTimeout(resolve, 5))
  stream.reset(8, 'client went away')
}

test('reused body buffers: 6 rounds × 24 concurrent uploads (3 × 16 KiB, distinct bytes, a quarter cut off): every answer matches its own bytes', { timeout: 60000 }, async (t) => {
  const app = await startFerry(['app', HANDLER, '--listen', 'tcp://127.0.0.1:0', '--threads', '2'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  let checked = 0
  for (let round = 0; round < 6; round++) {
    const jobs = Array.from({ length: 24 }, async (_, i) => {
      const pieces = [randomBytes(PIECE), randomBytes(PIECE), randomBytes(PIECE)]
      if (i % 4 === 3) {
        await cutOff(s, pieces)
        return
      }
      const echo = i % 2 === 0
      const reply = await upload(s, echo ? '/echo' : '/sha', pieces)
      assert.equal(reply.status, 200)
      const sent = Buffer.concat(pieces)
      if (echo) assert.ok(reply.body.equals(sent), `round ${round} upload ${i}: the echo is its own bytes`)
      else assert.deepEqual(JSON.parse(reply.body.toString()), { bytes: sent.byteLength, sha256: createHash('sha256').update(sent).digest('hex') })
      checked++
    })
    await Promise.all(jobs)
  }
  assert.equal(checked, 6 * 18)
})
