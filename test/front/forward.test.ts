/**
 * `ferry front` → a native node (the real Session over real unix and tcp sockets): methods,
 * headers, trusted head fields, bodies both ways with bounded memory, SSE, client abort.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, rssOf, sleep, startFront, startNode, tempDir, type Proc } from './helpers.ts'

interface Echo {
  node: string
  method: string
  path: string
  authority: string
  scheme: string
  headers: string[]
  remoteAddress: string
  requestId: string
  bodyLength: number
  protocol: string
  bytes: number
  sha256: string
}

const hooks = fileHooks(after)

for (const transport of ['unix', 'tcp'] as const) {
  describe(`front → native node over ${transport}`, () => {
    let front: Proc
    let url: string
    before(async () => {
      const dir = tempDir(hooks)
      const listen = transport === 'unix' ? `unix:${join(dir, 'node.sock')}` : 'tcp://127.0.0.1:0'
      const node = await startNode(hooks, listen, 'n1')
      front = await startFront(hooks, ['--upstream', node.addresses[0]!])
      url = baseUrl(front.addresses[0]!)
    })

    test('the listening line names the bound address', () => {
      assert.match(front.addresses[0]!, /^tcp:\/\/127\.0\.0\.1:\d+$/)
      assert.equal(front.lines.filter((l) => l.msg === 'listening').length, 1)
    })

    test('every method reaches the app with its body', async () => {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const body = method === 'GET' ? undefined : `body of ${method}`
        const res = await fetchRaw(`${url}/echo`, { method, body })
        assert.equal(res.status, 200, method)
        const echo = JSON.parse(res.body.toString()) as Echo
        assert.equal(echo.method, method)
        assert.equal(echo.bytes, body === undefined ? 0 : Buffer.byteLength(body))
        assert.equal(echo.bodyLength, body === undefined ? 0 : Buffer.byteLength(body))
      }
      const head = await fetchRaw(`${url}/echo`, { method: 'HEAD' })
      assert.equal(head.status, 200)
      assert.equal(head.body.length, 0)
    })

    test('headers: repeated kept in order, hop-by-hop and forged forwarding headers dropped', async () => {
      const res = await fetchRaw(`${url}/echo`, {
        headers: [
          'Host', url.slice('http://'.length), 'X-Multi', 'one', 'x-multi', 'two', 'Connection', 'keep-alive, X-Secret-Hop', 'X-Secret-Hop', 'gone',
          'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Proxy-Authorization', 'Basic x', 'X-Forwarded-For', '6.6.6.6',
          'X-Request-Id', 'forged-id', 'Cookie', 'a=1', 'Cookie', 'b=2'
        ]
      })
      const echo = JSON.parse(res.body.toString()) as Echo
      const names = echo.headers.filter((_, i) => i % 2 === 0)
      const pairs = (name: string): string[] => echo.headers.filter((_, i) => i % 2 === 1 && echo.headers[i - 1] === name)
      assert.deepEqual(pairs('x-multi'), ['one', 'two'])
      assert.deepEqual(pairs('cookie'), ['a=1', 'b=2'])
      for (const gone of ['connection', 'x-secret-hop', 'keep-alive', 'te', 'proxy-authorization', 'x-forwarded-for']) {
        assert.ok(!names.includes(gone), `${gone} must not reach the app`)
      }
      assert.ok(names.every((n) => n === n.toLowerCase()))
      assert.equal(echo.remoteAddress, '127.0.0.1')
      assert.equal(echo.scheme, 'http')
      assert.equal(echo.authority, url.slice('http://'.length))
      assert.equal(echo.protocol, 'HTTP/1.1')
      assert.notEqual(echo.requestId, 'forged-id')
      assert.match(echo.requestId, /^[0-9a-f]+-[0-9a-z]+$/)
    })

    test('UTF-8 path and a long query arrive byte for byte', async () => {
      const path = `/echo/${encodeURIComponent('ünïcødé/日本')}?q=${'x'.repeat(8000)}&a=%20b`
      const res = await fetchRaw(`${url}${path}`)
      const echo = JSON.parse(res.body.toString()) as Echo
      assert.equal(echo.path, path)
    })

    test('chunked upload streams (bodyLength -1) and arrives intact', async () => {
      const body = Buffer.alloc(3 * 1024 * 1024 + 17, 'ab')
      const res = await new Promise<Echo>((resolve, reject) => {
        const req = httpRequest(`${url}/echo`, { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, agent: false }, (r) => {
          const chunks: Buffer[] = []
          r.on('data', (c: Buffer) => chunks.push(c))
          r.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as Echo))
        })
        req.on('error', reject)
        for (let i = 0; i < body.length; i += 100000) req.write(body.subarray(i, i + 100000))
        req.end()
      })
      assert.equal(res.bodyLength, -1)
      assert.equal(res.bytes, body.length)
      assert.equal(res.sha256, createHash('sha256').update(body).digest('hex'))
    })

    test('server-sent events stream through as they are produced', async () => {
      const res = await fetchRaw(`${url}/sse?n=4`)
      assert.equal(res.status, 200)
      assert.equal(res.headers['content-type'], 'text/event-stream')
      assert.equal(res.body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n')
    })

    test('a client that disconnects cancels the stream on the node', async () => {
      const before = JSON.parse((await fetchRaw(`${url}/stats`)).body.toString()) as { cancels: number }
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${url}/hang`, { agent: false })
        req.on('error', () => resolve())
        req.end()
        setTimeout(() => { req.destroy(); resolve() }, 150)
      })
      let cancels = before.cancels
      for (let i = 0; i < 40 && cancels === before.cancels; i++) {
        await sleep(25)
        cancels = (JSON.parse((await fetchRaw(`${url}/stats`)).body.toString()) as { cancels: number }).cancels
      }
      assert.equal(cancels, before.cancels + 1)
    })
  })
}

describe('100 MiB bodies with bounded front memory', () => {
  let front: Proc
  let url: string
  const SIZE = 100 * 1024 * 1024
  before(async () => {
    const dir = tempDir(hooks)
    const node = await startNode(hooks, `unix:${join(dir, 'node.sock')}`, 'big')
    front = await startFront(hooks, ['--upstream', node.addresses[0]!])
    url = baseUrl(front.addresses[0]!)
    await fetchRaw(`${url}/hello`)
  })

  test('download: a client that pauses holds the front to a bounded buffer', async () => {
    const base = rssOf(front.child.pid!)
    let peak = base
    const got = await new Promise<{ bytes: number, sha: string }>((resolve, reject) => {
      const hash = createHash('sha256')
      let bytes = 0
      let paused = false
      const req = httpRequest(`${url}/download?n=${SIZE}`, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => {
          bytes += c.length
          hash.update(c)
          if (!paused && bytes > 20 * 1024 * 1024) {
            paused = true
            res.pause()
            setTimeout(() => { peak = Math.max(peak, rssOf(front.child.pid!)); res.resume() }, 400)
          }
          if ((bytes & 0xfffff) < c.length) peak = Math.max(peak, rssOf(front.child.pid!))
        })
        res.on('end', () => resolve({ bytes, sha: hash.digest('hex') }))
      })
      req.on('error', reject)
      req.end()
    })
    assert.equal(got.bytes, SIZE)
    assert.equal(got.sha, createHash('sha256').update(Buffer.alloc(SIZE, 120)).digest('hex'))
    const growth = peak - base
    assert.ok(growth < 48 * 1024 * 1024, `front RSS grew by ${(growth / 1048576).toFixed(1)} MiB for a 100 MiB download`)
  })

  test('upload: 100 MiB streams through without buffering', async () => {
    const base = rssOf(front.child.pid!)
    let peak = base
    const chunk = Buffer.alloc(1024 * 1024, 7)
    const echo = await new Promise<Echo>((resolve, reject) => {
      const req = httpRequest(`${url}/upload`, { method: 'POST', headers: { 'content-length': String(SIZE) }, agent: false }, (r) => {
        const chunks: Buffer[] = []
        r.on('data', (c: Buffer) => chunks.push(c))
        r.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as Echo))
      })
      req.on('error', reject)
      let sent = 0
      const pump = (): void => {
        while (sent < SIZE) {
          sent += chunk.length
          if (sent % (8 * chunk.length) === 0) peak = Math.max(peak, rssOf(front.child.pid!))
          if (!req.write(chunk)) {
            req.once('drain', pump)
            return
          }
        }
        req.end()
      }
      pump()
    })
    assert.equal(echo.bytes, SIZE)
    assert.equal(echo.sha256, createHash('sha256').update(Buffer.alloc(SIZE, 7)).digest('hex'))
    const growth = peak - base
    assert.ok(growth < 48 * 1024 * 1024, `front RSS grew by ${(growth / 1048576).toFixed(1)} MiB for a 100 MiB upload`)
  })
})
