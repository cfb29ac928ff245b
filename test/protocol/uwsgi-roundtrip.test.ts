/**
 * encodeUwsgiRequest → UwsgiDecoder round trips for random heads and bodies (fast-check),
 * fed whole, byte by byte and at random split points. What uwsgi cannot carry is stated in
 * `expected()`: with Debian's HTTP_HOST param the host header moves to the front as nginx's
 * $host and becomes the authority; a requestId rides as x-request-id right after it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encodeUwsgiRequest, type RequestHead, UwsgiDecoder } from '@ferry/protocol'
import fc from 'fast-check'
import { splitAtWrapped } from '../helpers/chunks.ts'

const TOKEN_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-'.split('')
const RESERVED = new Set(['host', 'x-request-id', 'content-length', 'content-type', 'transfer-encoding'])
const PATH_CHARS = [...'abcXYZ019-._~!$&\'()*+,;=:@%/', 'é', 'ü', '日', '€', '😀']

const nameArb = fc.array(fc.constantFrom(...TOKEN_CHARS), { minLength: 1, maxLength: 20 })
  .map((a) => a.join(''))
  .filter((n) => !RESERVED.has(n) && n.charCodeAt(0) !== 45)
// header values are latin1 strings: any char 0x00-0xff (uwsgi is length-prefixed, binary-safe)
const valueArb = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 60 }).map((a) => String.fromCharCode(...a))
const hostArb = fc.tuple(
  fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABC0123456789.-'.split('')), { minLength: 1, maxLength: 30 }).map((a) => a.join('')),
  fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined })
).map(([h, port]) => (port === undefined ? h : `${h}:${port}`))
const pathArb = fc.tuple(
  fc.array(fc.constantFrom(...PATH_CHARS), { maxLength: 40 }).map((a) => `/${a.join('')}`),
  fc.option(fc.array(fc.constantFrom(...PATH_CHARS, '?', '='), { maxLength: 30 }).map((a) => a.join('')), { nil: undefined })
).map(([p, q]) => (q === undefined ? p : `${p}?${q}`))

const headArb = fc.record({
  method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
  path: pathArb,
  authority: fc.oneof(hostArb, fc.constant('')),
  scheme: fc.constantFrom('http', 'https'),
  extra: fc.uniqueArray(fc.tuple(nameArb, valueArb), { selector: ([n]) => n, maxLength: 12 }),
  contentType: fc.option(fc.constantFrom('text/plain', 'application/json; charset=utf-8'), { nil: undefined }),
  remoteAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  remotePort: fc.integer({ min: 0, max: 65535 }),
  requestId: fc.oneof(fc.constant(''), fc.stringMatching(/^[A-Za-z0-9-]{1,32}$/)),
  bodyLength: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 })),
  serverName: fc.oneof(fc.constant(''), fc.domain()),
  serverPort: fc.integer({ min: 1, max: 65535 }),
  protocol: fc.constantFrom('HTTP/1.0', 'HTTP/1.1', 'HTTP/2'),
  hostAt: fc.nat(12),
  hostParam: fc.boolean()
})

type Gen = typeof headArb extends fc.Arbitrary<infer T> ? T : never

function build (g: Gen): RequestHead {
  const headers: string[] = []
  for (const [n, v] of g.extra) headers.push(n, v)
  if (g.contentType !== undefined) headers.push('content-type', g.contentType)
  if (g.bodyLength > 0) headers.push('content-length', String(g.bodyLength))
  if (g.authority !== '') {
    const at = 2 * Math.min(g.hostAt, headers.length / 2)
    headers.splice(at, 0, 'host', g.authority)
  }
  return {
    method: g.method,
    path: g.path,
    authority: g.authority,
    scheme: g.scheme,
    headers,
    remoteAddress: g.remoteAddress,
    remotePort: g.remotePort,
    requestId: g.requestId,
    bodyLength: g.bodyLength,
    serverName: g.serverName,
    serverPort: g.serverPort,
    protocol: g.protocol
  }
}

/** What the decoder must give back for `h` encoded with `hostParam`. */
function expected (h: RequestHead, hostParam: boolean): RequestHead {
  const front: string[] = []
  let authority = h.authority
  if (hostParam) {
    // nginx's $host: lower-case, without port and one trailing dot
    const host = h.authority === '' ? h.serverName : h.authority.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '')
    if (host !== '') front.push('host', host)
    authority = host
  }
  if (h.requestId !== '') front.push('x-request-id', h.requestId)
  const rest: string[] = []
  for (let i = 0; i < h.headers.length; i += 2) {
    if (hostParam && h.headers[i] === 'host') continue
    rest.push(h.headers[i]!, h.headers[i + 1]!)
  }
  if (authority === '') authority = h.serverName
  return { ...h, authority, headers: [...front, ...rest] }
}

function run (chunks: Buffer[]): { head: RequestHead | null, body: Buffer, ended: number } {
  let head: RequestHead | null = null
  const parts: Buffer[] = []
  let ended = 0
  const d = new UwsgiDecoder({
    onHead (h) { head = h },
    onBody (c) { parts.push(Buffer.from(c)) },
    onEnd () { ended++ }
  })
  for (const c of chunks) d.push(c)
  d.end()
  return { head, body: Buffer.concat(parts), ended }
}


describe('uwsgi round trip', () => {
  test('random heads: whole, byte by byte, and at random split points (fast-check, 250 runs)', () => {
    fc.assert(fc.property(headArb, fc.array(fc.nat(), { maxLength: 10 }), fc.integer({ min: 0, max: 255 }), (g, cuts, fill) => {
      const h = build(g)
      const want = expected(h, g.hostParam)
      const packet = encodeUwsgiRequest(h, { hostParam: g.hostParam })
      const body = Buffer.alloc(h.bodyLength, fill)
      for (let i = 0; i < body.length; i += 7) body[i] = i & 0xff
      const all = Buffer.concat([packet, body])

      const whole = run([all])
      assert.deepEqual(whole.head, want)
      assert.deepEqual(whole.body, body)
      assert.equal(whole.ended, 1)

      const bytes: Buffer[] = []
      for (let i = 0; i < all.length; i++) bytes.push(all.subarray(i, i + 1))
      const byByte = run(bytes)
      assert.deepEqual(byByte.head, want)
      assert.deepEqual(byByte.body, body)
      assert.equal(byByte.ended, 1)

      const split = run(splitAtWrapped(all, cuts))
      assert.deepEqual(split.head, want)
      assert.deepEqual(split.body, body)
      assert.equal(split.ended, 1)
    }), { numRuns: 250 })
  })

  test('head and body in separate writes, and the packet header alone first', () => {
    const h = build({
      method: 'POST', path: '/u?x=1', authority: 'a.test', scheme: 'http', extra: [['x-k', 'v']], contentType: 'text/plain',
      remoteAddress: '::1', remotePort: 1, requestId: 'r', bodyLength: 4, serverName: 's', serverPort: 2, protocol: 'HTTP/1.1', hostAt: 0, hostParam: true
    })
    const packet = encodeUwsgiRequest(h)
    const r = run([packet.subarray(0, 4), packet.subarray(4), Buffer.from('da'), Buffer.from('ta')])
    assert.deepEqual(r.head, expected(h, true))
    assert.equal(r.body.toString(), 'data')
  })
})
