/**
 * 100 MiB through `ferry app` in both directions with the app-server's memory bounded: the
 * body streams socket → worker → handler and back with flow control, never whole in memory.
 * Also: a client that stops reading a download stalls the worker (credit), not the memory.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import type { Stream } from '@ferry/protocol'
import { rssKiB, startFerry } from '../helpers/proc.ts'
import { connect, drained, head } from './client.ts'

const MiB = 1024 * 1024
const LIMIT_KIB = 200 * 1024

test('100 MiB upload and 100 MiB download, app-server RSS growth < 200 MiB', async (t) => {
  const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const base = await rssKiB(app.pid)
  let peak = base
  const sampler = setInterval(() => { rssKiB(app.pid).then((v) => { peak = Math.max(peak, v) }, () => {}) }, 50)
  t.after(() => clearInterval(sampler))

  // upload: 100 MiB of a pattern, written with backpressure; the handler hashes it as a stream
  const chunk = Buffer.alloc(MiB)
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff
  const want = createHash('sha256')
  for (let i = 0; i < 100; i++) want.update(chunk)
  const up = s.request(head('/sha', { method: 'POST', bodyLength: 100 * MiB }), false)
  const reply = new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = []
    up.onData = (c) => parts.push(Buffer.from(c))
    up.onEnd = () => resolve(Buffer.concat(parts).toString())
    up.onError = reject
  })
  for (let i = 0; i < 100; i++) {
    if (!up.write(chunk)) await drained(up)
  }
  up.end()
  assert.deepEqual(JSON.parse(await reply), { bytes: 100 * MiB, sha256: want.digest('hex') })

  // download: 100 MiB streamed by the handler
  const down = s.request(head('/download?mib=100'), true)
  const got = await new Promise<{ n: number, sha: string }>((resolve, reject) => {
    const h = createHash('sha256')
    let n = 0
    down.onData = (c) => { n += c.length; h.update(c) }
    down.onEnd = () => resolve({ n, sha: h.digest('hex') })
    down.onError = reject
  })
  const pattern = Buffer.alloc(64 * 1024)
  for (let i = 0; i < pattern.length; i++) pattern[i] = i & 0xff
  const wantDown = createHash('sha256')
  for (let i = 0; i < 1600; i++) wantDown.update(pattern)
  assert.equal(got.n, 100 * MiB)
  assert.equal(got.sha, wantDown.digest('hex'))
  clearInterval(sampler)
  peak = Math.max(peak, await rssKiB(app.pid))
  t.diagnostic(`app-server RSS: base ${Math.round(base / 1024)} MiB, peak ${Math.round(peak / 1024)} MiB`)
  assert.ok(peak - base < LIMIT_KIB, `RSS grew ${Math.round((peak - base) / 1024)} MiB (base ${Math.round(base / 1024)} MiB)`)
})

test('a client that stops reading a download stalls the handler, not the memory', async (t) => {
  const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const base = await rssKiB(app.pid)
  const down: Stream = s.request(head('/download?mib=500'), true)
  down.manualConsume = true // never return credit: the server may send one window and no more
  let received = 0
  down.onData = (c) => { received += c.length }
  down.onError = () => {}
  await new Promise((r) => setTimeout(r, 1500))
  const rss = await rssKiB(app.pid)
  assert.ok(received <= 300 * 1024, `received ${received} bytes without giving credit`)
  assert.ok(rss - base < 64 * 1024, `RSS grew ${Math.round((rss - base) / 1024)} MiB while stalled`)
  // resume: the stream continues where it stopped
  down.consume(received)
  await new Promise((r) => setTimeout(r, 300))
  assert.ok(received > 300 * 1024)
  down.reset(5)
})
