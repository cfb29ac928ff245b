/**
 * Middleware through a real `ferry app` (config file): server-wide ones run first, then the
 * mount's own, in order; one can short-circuit; built-ins request-id, compress (Accept-
 * Encoding negotiation with q-values, skipped types and sizes, Vary, streamed bodies),
 * cors (preflight and simple requests) and body-limit (Content-Length and streamed bytes → 413).
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import type { Session } from '@ferry/protocol'
import { negotiate } from '@ferry/app-server'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'
import { collect, connect, head, type Reply, request } from './client.ts'

const F = 'test/fixtures/middleware'
const BIG = 'ferry compresses this line. '.repeat(200)

describe('middleware', () => {
  let app: FerryProcess
  let s: Session
  const tmp = tempDir()
  before(async () => {
    const config = join(tmp.dir, 'app.json')
    writeFileSync(config, JSON.stringify({
      listen: [`unix:${join(tmp.dir, 'app.sock')}`],
      threads: '1',
      middleware: ['request-id', `${F}/trace-a.ts`],
      mounts: [
        {
          prefix: '/m',
          handler: `${F}/app.ts`,
          middleware: [
            { module: `${F}/trace-b.ts` },
            { name: 'cors', origins: ['https://ok.example'], credentials: true, maxAge: 600, exposeHeaders: ['x-order'] },
            'compress',
            'body-limit:1k'
          ]
        },
        { prefix: '/', handler: `${F}/app.ts` }
      ]
    }))
    app = await startFerry(['app', '--config', config])
    s = await connect(app.addresses[0]!)
  })
  after(async () => {
    s?.destroy()
    await app?.stop()
    tmp.cleanup()
  })

  const get = (path: string, headers: string[] = [], method = 'GET'): Promise<Reply> =>
    request(s, head(path, { method, headers, requestId: `rid-${path}` }))

  test('order: server-wide, then the mount\'s; the request on the way in, the response on the way out', async () => {
    const r = await get('/m/trace')
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'trace=ab')
    assert.equal(r.get('x-order'), 'h, b, a')
    assert.equal(r.get('x-request-id'), 'rid-/m/trace')
    // the root mount has only the server-wide ones
    const root = await get('/trace')
    assert.equal(root.body.toString(), 'trace=a')
    assert.equal(root.get('x-order'), 'h, a')
    assert.equal(root.get('x-request-id'), 'rid-/trace')
  })

  test('short-circuit: a middleware answers, the handler and inner middleware never run', async () => {
    const r = await get('/m/blocked')
    assert.equal(r.status, 403)
    assert.equal(r.body.toString(), 'blocked by b')
    assert.equal(r.get('x-order'), 'b, a')
    assert.equal(r.get('x-request-id'), 'rid-/m/blocked')
  })

  const decode = (r: Reply): string => {
    const enc = r.get('content-encoding')
    if (enc === 'gzip') return gunzipSync(r.body).toString()
    if (enc === 'br') return brotliDecompressSync(r.body).toString()
    assert.equal(enc, undefined)
    return r.body.toString()
  }

  const negotiation: [string | null, string | undefined][] = [
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'],
    ['gzip;q=1, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['gzip;q=0', undefined],
    ['identity', undefined],
    ['*', 'br'],
    ['*;q=0.1, br;q=0', 'gzip'],
    ['deflate', undefined],
    [null, undefined]
  ]
  for (const [ae, want] of negotiation) {
    test(`compress: Accept-Encoding ${ae === null ? '(none)' : JSON.stringify(ae)} → ${want ?? 'identity'}`, async () => {
      const r = await get('/m/big', ae === null ? [] : ['accept-encoding', ae])
      assert.equal(r.status, 200)
      assert.equal(r.get('content-encoding'), want)
      assert.match(r.get('vary') ?? '', /Accept-Encoding/)
      assert.equal(decode(r), BIG)
      if (want !== undefined) {
        assert.ok(r.body.byteLength < BIG.length / 4)
        assert.equal(r.get('etag'), 'W/"v1"')
      }
    })
  }

  test('compress: a streamed body is compressed chunk by chunk and decodes to the same bytes', async () => {
    const r = await get('/m/stream', ['accept-encoding', 'gzip'])
    assert.equal(r.get('content-encoding'), 'gzip')
    assert.equal(decode(r), BIG.repeat(3))
  })

  test('compress: skipped for compressed types, small bodies, HEAD, 204, an existing Content-Encoding', async () => {
    const png = await get('/m/png', ['accept-encoding', 'gzip, br'])
    assert.equal(png.get('content-encoding'), undefined)
    assert.equal(png.get('vary'), 'Origin')
    assert.equal(png.body.toString(), BIG)
    const svg = await get('/m/svg', ['accept-encoding', 'gzip'])
    assert.equal(svg.get('content-encoding'), 'gzip')
    const small = await get('/m/small', ['accept-encoding', 'gzip'])
    assert.equal(small.get('content-encoding'), undefined)
    assert.match(small.get('vary') ?? '', /Accept-Encoding/)
    assert.equal(small.body.toString(), 'small')
    const headReq = await get('/m/big', ['accept-encoding', 'gzip'], 'HEAD')
    assert.equal(headReq.get('content-encoding'), undefined)
    assert.equal(headReq.body.byteLength, 0)
    const empty = await get('/m/empty', ['accept-encoding', 'gzip'])
    assert.equal(empty.status, 204)
    assert.equal(empty.get('content-encoding'), undefined)
    const encoded = await get('/m/encoded', ['accept-encoding', 'gzip'])
    assert.equal(encoded.get('content-encoding'), 'identity')
    assert.equal(encoded.body.toString(), BIG)
    // the root mount has no compress middleware
    const root = await get('/big', ['accept-encoding', 'gzip'])
    assert.equal(root.get('content-encoding'), undefined)
  })

  test('negotiate() units: q-values, *, x-gzip, malformed q', () => {
    assert.equal(negotiate('x-gzip', ['br', 'gzip']), 'gzip')
    assert.equal(negotiate('br;q=0.4, gzip;q=0.5', ['br', 'gzip']), 'gzip')
    assert.equal(negotiate('br;q=abc', ['br', 'gzip']), null)
    assert.equal(negotiate('', ['br', 'gzip']), null)
    assert.equal(negotiate('gzip', ['br']), null)
  })

  test('cors: preflight OPTIONS is answered by the middleware', async () => {
    const r = await get('/m/anything', ['origin', 'https://ok.example', 'access-control-request-method', 'PUT', 'access-control-request-headers', 'x-custom, content-type'], 'OPTIONS')
    assert.equal(r.status, 204)
    assert.equal(r.get('access-control-allow-origin'), 'https://ok.example')
    assert.equal(r.get('access-control-allow-credentials'), 'true')
    assert.equal(r.get('access-control-allow-methods'), 'GET, HEAD, PUT, PATCH, POST, DELETE')
    assert.equal(r.get('access-control-allow-headers'), 'x-custom, content-type')
    assert.equal(r.get('access-control-max-age'), '600')
    assert.equal(r.get('x-request-id'), 'rid-/m/anything')
    assert.equal(r.get('x-order'), 'b, a') // the handler ("h") did not run
    const refused = await get('/m/anything', ['origin', 'https://evil.example', 'access-control-request-method', 'PUT'], 'OPTIONS')
    assert.equal(refused.status, 204)
    assert.equal(refused.get('access-control-allow-origin'), undefined)
    const badMethod = await get('/m/anything', ['origin', 'https://ok.example', 'access-control-request-method', 'PROPFIND'], 'OPTIONS')
    assert.equal(badMethod.get('access-control-allow-origin'), undefined)
  })

  test('cors: simple requests get the origin echoed (credentials), others nothing', async () => {
    const ok = await get('/m/trace', ['origin', 'https://ok.example'])
    assert.equal(ok.status, 200)
    assert.equal(ok.get('access-control-allow-origin'), 'https://ok.example')
    assert.equal(ok.get('access-control-allow-credentials'), 'true')
    assert.equal(ok.get('access-control-expose-headers'), 'x-order')
    assert.match(ok.get('vary') ?? '', /Origin/)
    const evil = await get('/m/trace', ['origin', 'https://evil.example'])
    assert.equal(evil.status, 200)
    assert.equal(evil.get('access-control-allow-origin'), undefined)
    const none = await get('/m/trace')
    assert.equal(none.get('access-control-allow-origin'), undefined)
  })

  test('body-limit: Content-Length over the limit → 413 with the request id, before the handler', async () => {
    const r = await request(s, head('/m/echo', { method: 'POST', requestId: 'rid-413' }), 'x'.repeat(2000))
    assert.equal(r.status, 413)
    assert.equal(r.get('x-request-id'), 'rid-413')
    assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_BODY_TOO_LARGE')
    const fine = await request(s, head('/m/echo', { method: 'POST' }), 'x'.repeat(1000))
    assert.equal(fine.status, 200)
    assert.equal(fine.body.toString(), 'got 1000 bytes')
    // the root mount has no limit
    assert.equal((await request(s, head('/echo', { method: 'POST' }), 'x'.repeat(5000))).body.toString(), 'got 5000 bytes')
  })

  test('body-limit: a streamed body (no length) is counted; past the limit → 413', async () => {
    const stream = s.request(head('/m/echo', { method: 'POST', bodyLength: -1, requestId: 'rid-stream-413' }), false)
    const r = await collect(stream, async (st) => {
      for (let i = 0; i < 4; i++) st.write(Buffer.alloc(600, 120))
      st.end()
    })
    assert.equal(r.status, 413)
    assert.equal(r.get('x-request-id'), 'rid-stream-413')
    const small = s.request(head('/m/echo', { method: 'POST', bodyLength: -1 }), false)
    const ok = await collect(small, async (st) => {
      st.write(Buffer.alloc(300, 120))
      st.write(Buffer.alloc(300, 120))
      st.end()
    })
    assert.equal(ok.status, 200)
    assert.equal(ok.body.toString(), 'got 600 bytes')
  })
})
