/**
 * WebSockets at scale and under backpressure: 1,000 concurrent sockets multiplexed over one
 * native connection (front --sessions 1, checked with the app's --stats gauges), and a slow
 * reader of a 200 MiB flood whose tiers' memory stays bounded while it does not read.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { rssKiB } from '../helpers/proc.ts'
import { type Client, connect, metrics, pairFor, sample, until } from './helpers.ts'

test('1,000 concurrent sockets over ONE native connection: all open, each echoes its own message', { timeout: 40000 }, async (t) => {
  const pair = await pairFor(t, { front: ['--sessions', '1'], stats: true })
  const base = `ws://${pair.host}`
  const clients: Client[] = []
  t.after(() => { for (const c of clients) c.ws.terminate() })
  // opened in batches of 100 so the front's accept backlog never overflows (a dropped SYN
  // would only be retried after a second)
  for (let b = 0; b < 10; b++) {
    const batch = await Promise.all(Array.from({ length: 100 }, () => connect(`${base}/echo`)))
    clients.push(...batch)
  }
  assert.equal(clients.length, 1000)
  for (const c of clients) assert.equal(c.ws.readyState, 1)

  const text = await metrics(pair.stats!)
  assert.equal(sample(text, 'ferry_app_native_connections'), 1, 'one native connection from the front')
  assert.equal(sample(text, 'ferry_app_native_streams{connection="0"}'), 1000, 'one stream per socket on it')

  const answers = await Promise.all(clients.map(async (c, i) => {
    const msg = `socket ${i} says ${'#'.repeat(i % 50)}`
    c.ws.send(msg)
    const m = await c.next()
    return m.data.toString() === msg
  }))
  assert.equal(answers.filter(Boolean).length, 1000, 'every socket got its own message back')

  await Promise.all(clients.map(async (c) => {
    c.ws.close(1000)
    assert.deepEqual(await c.closed, { code: 1000, reason: '' })
  }))
  // every stream is gone from the node once the sockets are closed; the connection stays
  await until(async () => sample(await metrics(pair.stats!), 'ferry_app_native_streams{connection="0"}') === 0, 5000, 'streams closed on the node')
  assert.equal(sample(await metrics(pair.stats!), 'ferry_app_native_connections'), 1)
})

test('slow reader of a 200 MiB flood: front and app memory bounded while it does not read, then every byte arrives', { timeout: 50000 }, async (t) => {
  const pair = await pairFor(t)
  const N = 3200
  const SIZE = 65536
  // warm both processes with a short flood first, so the baseline includes a loaded heap
  const warm = await connect(`ws://${pair.host}/flood?n=32&size=${SIZE}`)
  for (let i = 0; i < 32; i++) await warm.next()
  assert.equal((await warm.next()).data.toString(), 'done 32 max-buffered-ok')
  warm.ws.close(1000)
  await warm.closed

  const base = { front: await rssKiB(pair.front.pid), app: await rssKiB(pair.app.pid) }
  const c = await connect(`ws://${pair.host}/flood?n=${N}&size=${SIZE}`)
  // stop reading at once: the client's socket is paused, so only what fits the kernel
  // buffers and the windows can move
  c.ws.pause()
  const peak = { front: 0, app: 0 }
  const end = Date.now() + 3000
  let asked = false
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200))
    peak.front = Math.max(peak.front, await rssKiB(pair.front.pid))
    peak.app = Math.max(peak.app, await rssKiB(pair.app.pid))
    if (!asked && end - Date.now() < 500) {
      // the handler reports its bufferedAmount: the backpressure reached the worker
      c.ws.send('buffered')
      asked = true
    }
  }
  t.diagnostic(`rss growth while paused: front ${peak.front - base.front} KiB (${base.front} → ${peak.front}), app ${peak.app - base.app} KiB (${base.app} → ${peak.app})`)
  // Bound: what may sit in the tiers while the client does not read is a few MiB:
  // the worker stops sending above 1 MiB bufferedAmount, the stream window is 256 KiB
  // (the front returns credit only when the client socket drains), plus the kernel socket
  // buffers (a few MiB on loopback) and ws's one outgoing message. 64 MiB above the
  // baseline leaves room for V8's young generation and allocator slack, and is far below
  // the 200 MiB an unbounded tier would buffer.
  const LIMIT_KIB = 64 * 1024
  assert.ok(peak.front - base.front < LIMIT_KIB, `front grew ${peak.front - base.front} KiB (${base.front} → ${peak.front})`)
  assert.ok(peak.app - base.app < LIMIT_KIB, `app grew ${peak.app - base.app} KiB (${base.app} → ${peak.app})`)

  c.ws.resume()
  let bytes = 0
  let ok = 0
  let report: { at: number, text: string } | null = null
  const expected = Buffer.alloc(SIZE, 0x62)
  for (let i = 0; i < N;) {
    const m = await c.next()
    if (!m.isBinary && m.data.toString().startsWith('buffered ')) {
      report = { at: i, text: m.data.toString() }
      continue
    }
    i++
    bytes += m.data.length
    if (m.isBinary && m.data.equals(expected)) ok++
  }
  assert.ok(report !== null, 'the handler answered "buffered"')
  // The pump was stalled: it sends while bufferedAmount < 1 MiB and resumes on
  // 'bufferedamountlow' (≤ 256 KiB); stalled means above the threshold and at most one
  // 65541-byte record past 1 MiB (the front holds a window's credit while the client does not read)
  const amount = Number(report.text.slice('buffered '.length))
  assert.ok(amount > 256 * 1024 && amount < 1024 * 1024 + SIZE + 5, `bufferedAmount in the worker while the client did not read: ${amount}`)
  // what was on its way past the worker when the client stopped: kernel buffers, the front's
  // window and ws's send buffer — a few MiB (measured: ~75 messages, 4.7 MiB); 20 MiB is the bound
  assert.ok(report.at < 320, `the flood was held: the answer came after ${report.at} of ${N} messages`)
  t.diagnostic(`worker ${report.text} after ${report.at} messages`)
  assert.equal(ok, N, 'every message is 65536 bytes of 0x62')
  assert.equal(bytes, 200 * 1024 * 1024)
  const done = await c.next()
  assert.equal(done.isBinary, false)
  assert.equal(done.data.toString(), `done ${N} max-buffered-ok`)
  c.ws.close(1000)
  assert.deepEqual(await c.closed, { code: 1000, reason: '' })
})
