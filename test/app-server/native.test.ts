/**
 * `ferry app` over native ferry connections, unix and tcp: methods, queries, UTF-8 paths,
 * repeated headers, bodies both ways, streamed responses, 1,000 concurrent streams on one
 * connection, and an unread request body that must not hold the connection's credit.
 */
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Session } from '@ferry/protocol'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'
import { collect, connect, drained, head, request } from './client.ts'

const HANDLER = 'test/fixtures/handlers/basic.ts'

describe('ferry app: native codec', () => {
  let app: FerryProcess
  const tmp = tempDir()
  const sock = join(tmp.dir, 'app.sock')
  const sessions: Session[] = []

  before(async () => {
    app = await startFerry(['app', HANDLER, '--listen', `unix:${sock}`, '--listen', 'tcp://127.0.0.1:0', '--threads', '2', '--socket-mode', '660'])
  })
  after(async () => {
    for (const s of sessions) s.destroy()
    assert.equal(await app.stop(), 0)
    tmp.cleanup()
  })

  async function open (i: number): Promise<Session> {
    const s = await connect(app.addresses[i]!)
    sessions.push(s)
    return s
  }

  test('the listening line has both canonical addresses with the real port', () => {
    assert.equal(app.addresses.length, 2)
    assert.equal(app.addresses[0], `unix:${sock}`)
    assert.match(app.addresses[1]!, /^tcp:\/\/127\.0\.0\.1:[1-9]\d*$/)
    assert.equal(statSync(sock).mode & 0o777, 0o660)
  })

  for (const [i, kind] of [[0, 'unix'], [1, 'tcp']] as const) {
    test(`${kind}: GET with a query, repeated headers, request id and client address`, async () => {
      const s = await open(i)
      const r = await request(s, head('/info?a=1&b=x%20y&a=2', {
        headers: ['x-rep', 'one', 'x-rep', 'two', 'accept', 'application/json'],
        requestId: 'req-abc',
        remoteAddress: '203.0.113.9',
        remotePort: 5555
      }))
      assert.equal(r.status, 200)
      assert.equal(r.get('content-type'), 'application/json')
      const info = JSON.parse(r.body.toString())
      assert.equal(info.method, 'GET')
      assert.equal(info.url, 'http://test.local/info?a=1&b=x%20y&a=2')
      assert.deepEqual(info.query, { a: '2', b: 'x y' })
      assert.deepEqual(info.headers, [['accept', 'application/json'], ['x-rep', 'one, two']])
      assert.equal(info.isRequest, true)
      assert.equal(info.requestId, 'req-abc')
      assert.equal(info.remoteAddress, '203.0.113.9')
      assert.equal(info.remotePort, 5555)
      assert.equal(r.get('content-length'), String(r.body.length))
    })

    test(`${kind}: POST text and JSON bodies`, async () => {
      const s = await open(i)
      const t = await request(s, head('/text', { method: 'POST' }), 'héllo')
      assert.equal(t.status, 200)
      assert.equal(t.body.toString(), 'POST héllo')
      assert.equal(t.get('content-type'), 'text/plain;charset=UTF-8')
      const j = await request(s, head('/json', { method: 'PUT', headers: ['content-type', 'application/json'] }), '{"x":[1,2]}')
      assert.deepEqual(JSON.parse(j.body.toString()), { got: { x: [1, 2] } })
    })
  }

  test('UTF-8 paths reach the handler percent-encoded, as a URL has them', async () => {
    const s = await open(1)
    const r = await request(s, head('/utf8/héllo%20wörld/日本'))
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'path=/utf8/héllo wörld/日本')
  })

  test('HEAD gets the headers of GET with no body', async () => {
    const s = await open(0)
    const g = await request(s, head('/headers'))
    const h = await request(s, head('/headers', { method: 'HEAD' }))
    assert.equal(h.status, 201)
    assert.equal(h.body.length, 0)
    assert.equal(h.head.bodyLength, 0)
    assert.equal(h.get('content-length'), String(g.body.length))
    assert.equal(h.get('content-type'), g.get('content-type'))
  })

  test('status, repeated response headers (set-cookie), bytes and empty bodies', async () => {
    const s = await open(0)
    const r = await request(s, head('/headers'))
    assert.equal(r.status, 201)
    assert.deepEqual(r.headers.filter((_, j) => j % 2 === 0 ? false : r.headers[j - 1] === 'set-cookie'), ['a=1', 'b=2'])
    const b = await request(s, head('/bytes'))
    assert.deepEqual([...b.body], [0, 1, 2, 255])
    const e = await request(s, head('/empty'))
    assert.equal(e.status, 204)
    assert.equal(e.body.length, 0)
    const n = await request(s, head('/nope'))
    assert.equal(n.status, 404)
  })

  test('1 MiB upload read as a stream, and echoed back byte for byte', async () => {
    const s = await open(1)
    const body = Buffer.alloc(1 << 20)
    for (let j = 0; j < body.length; j++) body[j] = (j * 7) & 0xff
    const { createHash } = await import('node:crypto')
    const sha = await request(s, head('/sha', { method: 'POST' }), body)
    assert.deepEqual(JSON.parse(sha.body.toString()), { bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') })
    const echo = await request(s, head('/echo', { method: 'POST', bodyLength: -1 }), body)
    assert.equal(echo.status, 200)
    assert.equal(echo.head.bodyLength, -1)
    assert.ok(echo.body.equals(body))
  })

  test('a streamed response (server-sent events) arrives in order', async () => {
    const s = await open(0)
    const r = await request(s, head('/sse?n=5'))
    assert.equal(r.status, 200)
    assert.equal(r.get('content-type'), 'text/event-stream')
    assert.equal(r.body.toString(), 'data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n')
  })

  test('1,000 concurrent streams on one connection all answer', async () => {
    const s = await open(1)
    const replies = await Promise.all(Array.from({ length: 1000 }, (_, j) =>
      request(s, head(`/info?i=${j}`, { requestId: `c-${j}` }))))
    for (let j = 0; j < replies.length; j++) {
      assert.equal(replies[j]!.status, 200)
      const info = JSON.parse(replies[j]!.body.toString())
      assert.equal(info.query.i, String(j))
      assert.equal(info.requestId, `c-${j}`)
    }
  })

  test('a request body the handler never reads does not block the connection', async () => {
    const s = await open(1)
    // More than a stream window (256 KiB) and the connection window (4 MiB) in total
    const big = Buffer.alloc(1024 * 1024, 1)
    for (let round = 0; round < 6; round++) {
      const stream = s.request(head('/ignore-body', { method: 'POST', bodyLength: -1 }), false)
      const reply = collect(stream, async (st) => {
        // write until the server answers; it resets the stream once the response is complete
        for (let k = 0; k < 4 && !st.closed; k++) {
          if (!st.write(big)) await Promise.race([drained(st), new Promise((r) => setTimeout(r, 200))])
        }
        st.end()
      })
      const r = await reply
      assert.equal(r.status, 200)
      assert.equal(r.body.toString(), 'ignored')
    }
    const after = await request(s, head('/text'))
    assert.equal(after.status, 200)
  })

  test('a handler can stream a response while the client has not finished the request', async () => {
    const s = await open(0)
    const stream = s.request(head('/echo', { method: 'POST', bodyLength: -1 }), false)
    const got: Buffer[] = []
    const firstChunk = new Promise<void>((resolve) => {
      stream.onResponse = () => {}
      stream.onData = (c) => { got.push(Buffer.from(c)); resolve() }
    })
    stream.write(Buffer.from('ping '))
    await firstChunk
    assert.equal(Buffer.concat(got).toString(), 'ping ')
    const done = new Promise<void>((resolve) => { stream.onEnd = resolve })
    stream.end(Buffer.from('pong'))
    await done
    assert.equal(Buffer.concat(got).toString(), 'ping pong')
  })
})
