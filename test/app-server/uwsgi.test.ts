/**
 * `ferry app` answering uwsgi (modifier1 0) on the same listener as native: one request per
 * connection, an HTTP/1.1 response, then FIN. Driven with raw sockets and the protocol's
 * uwsgi encoder (the bytes nginx sends).
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { emptyRequestHead, encodeUwsgiRequest, parseAddress, type RequestHead } from '@ferry/protocol'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

interface Raw {
  status: number
  headers: Map<string, string[]>
  body: Buffer
  /** the server closed with FIN (end), not RST */
  fin: boolean
}

function send (address: string, bytes: Buffer[], halfClose = false): Promise<Raw> {
  const a = parseAddress(address)
  const socket = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host)
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    let fin = false
    socket.on('data', (c) => parts.push(c))
    socket.on('end', () => { fin = true })
    socket.on('error', reject)
    socket.on('close', () => {
      const all = Buffer.concat(parts)
      const split = all.indexOf('\r\n\r\n')
      if (split < 0) return reject(new Error(`no HTTP head in ${JSON.stringify(all.toString('latin1').slice(0, 200))}`))
      const lines = all.subarray(0, split).toString('latin1').split('\r\n')
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0]!)![1])
      const headers = new Map<string, string[]>()
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':')
        const k = l.slice(0, i).toLowerCase()
        headers.set(k, [...(headers.get(k) ?? []), l.slice(i + 1).trim()])
      }
      resolve({ status, headers, body: all.subarray(split + 4), fin })
    })
    socket.on('connect', () => {
      for (const b of bytes) socket.write(b)
      if (halfClose) socket.end()
    })
  })
}

function uwsgi (path: string, init: Partial<RequestHead> = {}): Buffer {
  return encodeUwsgiRequest({ ...emptyRequestHead(), authority: 'app.test', path, serverName: 'app.test', serverPort: 80, remoteAddress: '198.51.100.7', remotePort: 4444, ...init })
}

describe('ferry app: uwsgi codec', () => {
  let app: FerryProcess
  const tmp = tempDir()
  before(async () => {
    app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', `unix:${join(tmp.dir, 'a.sock')}`, '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--max-queue', '0', '--concurrency', '1'])
  })
  after(async () => {
    assert.equal(await app.stop(), 0)
    tmp.cleanup()
  })

  for (const i of [0, 1]) {
    test(`GET with query and headers over ${i === 0 ? 'unix' : 'tcp'}: HTTP/1.1 answer, then FIN`, async () => {
      const r = await send(app.addresses[i]!, [uwsgi('/info?x=1&y=%C3%A9', { headers: ['host', 'app.test', 'x-one', 'a', 'x-one', 'b', 'x-request-id', 'rid-9'] })])
      assert.equal(r.status, 200)
      assert.equal(r.fin, true)
      const info = JSON.parse(r.body.toString())
      assert.equal(info.url, 'http://app.test/info?x=1&y=%C3%A9')
      assert.deepEqual(info.query, { x: '1', y: 'é' })
      assert.ok(info.headers.some(([k, v]: [string, string]) => k === 'x-one' && v === 'a, b'))
      assert.equal(info.remoteAddress, '198.51.100.7')
      assert.equal(info.remotePort, 4444)
      assert.equal(r.headers.get('content-length')![0], String(r.body.length))
    })
  }

  test('POST body (sent in pieces, peer half-closes after the request)', async () => {
    const body = Buffer.from('hello uwsgi body')
    const packet = uwsgi('/text', { method: 'POST', bodyLength: body.length, headers: ['content-type', 'text/plain'] })
    const r = await send(app.addresses[1]!, [packet.subarray(0, 3), packet.subarray(3), body.subarray(0, 5), body.subarray(5)], true)
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'POST hello uwsgi body')
  })

  test('a streamed response has no content-length and ends at close', async () => {
    const r = await send(app.addresses[1]!, [uwsgi('/sse?n=3')])
    assert.equal(r.status, 200)
    assert.equal(r.headers.has('content-length'), false)
    assert.equal(r.body.toString(), 'data: 0\n\ndata: 1\n\ndata: 2\n\n')
    assert.equal(r.fin, true)
  })

  test('HEAD keeps the GET length, sends no body; repeated set-cookie lines', async () => {
    const r = await send(app.addresses[1]!, [uwsgi('/headers', { method: 'HEAD' })])
    assert.equal(r.status, 201)
    assert.equal(r.body.length, 0)
    assert.equal(r.headers.get('content-length')![0], '1')
    assert.deepEqual(r.headers.get('set-cookie'), ['a=1', 'b=2'])
  })

  test('bodies on both sides of the 16 KiB written with their head: exact bytes, length, FIN', async () => {
    for (const size of [6, 16383, 16384, 16385, 70000]) {
      const body = Buffer.alloc(size - 5, 0x61)
      const r = await send(app.addresses[0]!, [uwsgi('/text', { method: 'POST', bodyLength: body.length, headers: ['content-type', 'text/plain'] }), body])
      assert.equal(r.status, 200)
      assert.equal(r.headers.get('content-length')![0], String(size))
      assert.equal(r.body.length, size, `a ${size}-byte answer, nothing more or less`)
      assert.ok(r.body.equals(Buffer.concat([Buffer.from('POST '), body])))
      assert.equal(r.fin, true)
    }
    const bytes = await send(app.addresses[0]!, [uwsgi('/bytes')])
    assert.deepEqual([...bytes.body], [0, 1, 2, 255])
    const empty = await send(app.addresses[0]!, [uwsgi('/empty')])
    assert.equal(empty.status, 204)
    assert.equal(empty.body.length, 0)
    assert.equal(empty.fin, true)
  })

  test('1 MiB echo through uwsgi', async () => {
    const body = Buffer.alloc(1 << 20, 3)
    const r = await send(app.addresses[1]!, [uwsgi('/echo', { method: 'POST', bodyLength: body.length }), body])
    assert.equal(r.status, 200)
    assert.ok(r.body.equals(body))
  })

  test('handler errors and queue full answer with a status, request id and FIN', async () => {
    const e = await send(app.addresses[1]!, [uwsgi('/throw', { headers: ['x-request-id', 'rid-boom'] })])
    assert.equal(e.status, 500)
    assert.ok(e.headers.get('x-request-id')![0]!.length > 0)
    // concurrency 1, queue 0: a second request while one runs gets 503 + Retry-After
    const slow = send(app.addresses[1]!, [uwsgi('/slow?ms=400')])
    await new Promise((r) => setTimeout(r, 100))
    const full = await send(app.addresses[1]!, [uwsgi('/text')])
    assert.equal(full.status, 503)
    assert.equal(full.headers.get('retry-after')![0], '1')
    assert.equal((await slow).status, 200)
  })

  test('modifier1 other than 0: an answer with the code, then FIN; the server keeps serving', async () => {
    const packet = uwsgi('/text')
    packet[0] = 5
    const r = await send(app.addresses[1]!, [packet])
    assert.equal(r.status, 400)
    assert.match(r.body.toString(), /modifier1/)
    await app.waitForLog((l) => l.code === 'FERRY_ERR_UWSGI_MODIFIER') // the log line may trail the answer
    assert.equal((await send(app.addresses[1]!, [uwsgi('/text')])).status, 200)
  })
})
