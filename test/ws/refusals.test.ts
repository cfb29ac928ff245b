/**
 * WebSocket refusals and limits: a uwsgi node (501), a handler refusing (403 relayed), bad
 * handshakes (426 / 400), upgradeWebSocket() on a plain request (TypeError → 500), the app's
 * --max-websockets (503 + retry-after, a place freed by a close is reused), and
 * --ws-max-message on the front and on the app (close 1009 reaches the client).
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type FerryProcess, startFerry } from '../helpers/proc.ts'
import { type Client, connect, type Pair, pairFor, rawGet, startPair, UPGRADE_HEADERS } from './helpers.ts'

describe('refusals on the default front and app', { timeout: 40000 }, () => {
  let pair: Pair & { stop (): Promise<void> }
  let uwsgiFront: FerryProcess
  before(async () => {
    pair = await startPair()
    // a second front speaking uwsgi to the same node (the app serves both protocols on a listener)
    uwsgiFront = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `uwsgi+unix:${pair.sock}`, '--no-access-log'])
  })
  after(async () => {
    await uwsgiFront?.stop()
    await pair.stop()
  })

  test('a uwsgi node cannot carry a WebSocket: 501 FERRY_ERR_FRONT_WS_UNSUPPORTED with x-request-id', async () => {
    const r = await rawGet(uwsgiFront.addresses[0]!.replace('tcp://', ''), '/echo', { ...UPGRADE_HEADERS })
    assert.equal(r.status, 501)
    const id = r.headers['x-request-id']
    assert.equal(typeof id, 'string')
    assert.ok((id as string).length > 0)
    const body = JSON.parse(r.body) as { statusCode: number, code: string, requestId: string }
    assert.equal(body.statusCode, 501)
    assert.equal(body.code, 'FERRY_ERR_FRONT_WS_UNSUPPORTED')
    assert.equal(body.requestId, id)
    // plain requests through that front still work
    const plain = await fetch(`http://${uwsgiFront.addresses[0]!.replace('tcp://', '')}/plain`)
    assert.equal(plain.status, 200)
    assert.equal(await plain.text(), 'plain')
  })

  test("the handler's refusal (403 and its body) is relayed to the client", async () => {
    const r = await rawGet(pair.host, '/refuse', { ...UPGRADE_HEADERS })
    assert.equal(r.status, 403)
    assert.equal(r.body, 'no sockets here')
    assert.equal(r.headers['content-type'], 'text/plain;charset=UTF-8')
    // the same through a ws client: an unexpected response, never an open socket
    await assert.rejects(connect(`ws://${pair.host}/refuse`), (err: { status?: number, body?: string }) => {
      assert.equal(err.status, 403)
      assert.equal(err.body, 'no sockets here')
      return true
    })
  })

  test('Sec-WebSocket-Version 14 → 426 FERRY_ERR_FRONT_WS_VERSION with sec-websocket-version: 13', async () => {
    const r = await rawGet(pair.host, '/echo', { ...UPGRADE_HEADERS, 'sec-websocket-version': '14' })
    assert.equal(r.status, 426)
    assert.equal(r.headers['sec-websocket-version'], '13')
    const body = JSON.parse(r.body) as { code: string, requestId: string }
    assert.equal(body.code, 'FERRY_ERR_FRONT_WS_VERSION')
    assert.equal(body.requestId, r.headers['x-request-id'])
  })

  test('a missing Sec-WebSocket-Key → 400 FERRY_ERR_FRONT_WS_HANDSHAKE', async () => {
    const { 'sec-websocket-key': _key, ...headers } = UPGRADE_HEADERS
    const r = await rawGet(pair.host, '/echo', headers)
    assert.equal(r.status, 400)
    const body = JSON.parse(r.body) as { code: string, statusCode: number }
    assert.equal(body.statusCode, 400)
    assert.equal(body.code, 'FERRY_ERR_FRONT_WS_HANDSHAKE')
  })

  test('a malformed Sec-WebSocket-Key (not 16 bytes in base64) → 400 FERRY_ERR_FRONT_WS_HANDSHAKE', async () => {
    const r = await rawGet(pair.host, '/echo', { ...UPGRADE_HEADERS, 'sec-websocket-key': 'c2hvcnQ=' })
    assert.equal(r.status, 400)
    assert.equal((JSON.parse(r.body) as { code: string }).code, 'FERRY_ERR_FRONT_WS_HANDSHAKE')
  })

  test('a plain GET on a WebSocket route: upgradeWebSocket() throws TypeError → 500', async () => {
    for (const path of ['/echo', '/not-ws']) {
      const res = await fetch(`http://${pair.host}${path}`)
      assert.equal(res.status, 500, path)
      assert.equal(res.headers.get('x-ferry-error'), 'FERRY_ERR_APP_HANDLER_THREW')
      const id = res.headers.get('x-request-id')
      assert.equal(await res.text(), `Internal Server Error (request id ${id})\n`)
      // the node logged the handler's TypeError under the request id
      const line = await pair.app.waitForLog((l) => l.reqId === id && l.code === 'FERRY_ERR_APP_HANDLER_THREW')
      const err = line.err as { type: string, message: string }
      assert.equal(err.type, 'TypeError')
      assert.equal(err.message, "not a WebSocket upgrade request: the 'upgrade' header must be 'websocket'")
    }
    // and the node goes on serving sockets
    const c = await connect(`ws://${pair.host}/echo`)
    c.ws.send('still here')
    assert.equal((await c.next()).data.toString(), 'still here')
    c.ws.close(1000)
    await c.closed
  })
})

test('app --max-websockets 2: the third concurrent upgrade → 503 with retry-after; a closed socket frees its place', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t, { app: ['--max-websockets', '2'] })
  const url = `ws://${pair.host}/echo`
  const a = await connect(url)
  const b = await connect(url)
  await assert.rejects(connect(url), (err: { status?: number, headers?: Record<string, string>, body?: string }) => {
    assert.equal(err.status, 503)
    assert.equal(err.headers?.['retry-after'], '1')
    assert.equal(err.headers?.['x-ferry-error'], 'FERRY_ERR_APP_WS_LIMIT')
    const id = err.headers?.['x-request-id']
    assert.equal(typeof id, 'string')
    assert.equal(err.body, `Service Unavailable: too many open WebSockets on this node (--max-websockets): 2 open (request id ${id})\n`)
    return true
  })
  await pair.app.waitForLog((l) => l.code === 'FERRY_ERR_APP_WS_LIMIT')
  // both open sockets are unaffected
  for (const c of [a, b]) {
    c.ws.send('ok?')
    assert.equal((await c.next()).data.toString(), 'ok?')
  }
  a.ws.close(1000)
  await a.closed
  // the node gives the place back once the stream is over: poll for an accepted upgrade
  let c: Client | null = null
  for (let i = 0; i < 50 && c === null; i++) {
    c = await connect(url).catch((err: { status?: number }) => {
      assert.equal(err.status, 503)
      return null
    })
    if (c === null) await new Promise((r) => setTimeout(r, 50))
  }
  assert.ok(c !== null, 'a new socket is accepted after one closed')
  c.ws.send('third')
  assert.equal((await c.next()).data.toString(), 'third')
  for (const x of [b, c]) {
    x.ws.close(1000)
    await x.closed
  }
})

test('front --ws-max-message 1024: 1024 bytes pass, a 2000-byte client message → close 1009', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t, { front: ['--ws-max-message', '1024'] })
  const c = await connect(`ws://${pair.host}/echo`)
  const ok = Buffer.alloc(1024, 7)
  c.ws.send(ok)
  assert.ok((await c.next()).data.equals(ok))
  c.ws.send(Buffer.alloc(2000, 8))
  const closed = await c.closed
  assert.equal(closed.code, 1009)
})

test('app --ws-max-message 1024 (front default): a 2000-byte client message → close 1009 reaches the client', { timeout: 30000 }, async (t) => {
  const pair = await pairFor(t, { app: ['--ws-max-message', '1024'] })
  const c = await connect(`ws://${pair.host}/echo`)
  const ok = Buffer.alloc(1024, 7)
  c.ws.send(ok)
  assert.ok((await c.next()).data.equals(ok))
  c.ws.send(Buffer.alloc(2000, 8))
  assert.deepEqual(await c.closed, { code: 1009, reason: 'message too big' })
  // the node is fine: a new socket echoes
  const d = await connect(`ws://${pair.host}/echo`)
  d.ws.send('small')
  assert.equal((await d.next()).data.toString(), 'small')
  d.ws.close(1000)
  await d.closed
})
