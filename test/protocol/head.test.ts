/**
 * Request and response heads: exact-bytes fixtures (any accidental wire change fails here),
 * fast-check round trips, byte equality with the generated protobufjs encoder, and decoding
 * of other valid protobuf encodings (fields out of order, table names sent as strings,
 * unknown fields).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodeRequestHead, decodeResponseHead, emptyRequestHead, encodeRequestHead, encodeRequestHeadView, encodeResponseHead,
  encodeResponseHeadView, HEADER_NAMES, headerCode, type HeaderList, MAX_BODY_LENGTH, METHODS, methodCode, type RequestHead, type ResponseHead
} from '@ferry/protocol'
import fc from 'fast-check'
import { ferry } from '../../packages/protocol/gen/ferry.js'
import { hex, unhex } from '../helpers/fixtures-native.ts'

// ── arbitraries ────────────────────────────────────────────────────────────

const customMethod = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}$/)
const method = fc.oneof(fc.constantFrom(...METHODS.slice(1)), customMethod)
const pathSegment = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => s.replace(/[\s\0]/g, '')),
  fc.string({ unit: 'binary', maxLength: 6 }).map((s) => s.replace(/[\s\0\r\n]/g, '')),
  fc.integer({ min: 0, max: 255 }).map((n) => `%${n.toString(16).padStart(2, '0').toUpperCase()}`),
  fc.constantFrom('a', 'b%20c', 'caf%C3%A9', 'café', '日本', '..', '.', ';x=1')
)
const path = fc.tuple(
  fc.array(pathSegment, { maxLength: 6 }),
  fc.option(fc.array(fc.tuple(pathSegment, pathSegment).map(([k, v]) => `${k}=${v}`), { minLength: 1, maxLength: 3 }))
).map(([segs, q]) => `/${segs.join('/')}${q === null ? '' : `?${q.join('&')}`}`)
const tableName = fc.constantFrom(...HEADER_NAMES.slice(1))
const customName = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9a-z]{1,24}$/)
const headerValue = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 80 }),
  fc.constantFrom('', 'text/html; charset=utf-8', 'a=1; Path=/; HttpOnly', '\t x \t', 'ñ\x7f\x01')
).map((v) => v.replace(/[\r\n\0]/g, ''))
const headers: fc.Arbitrary<HeaderList> = fc
  .array(fc.tuple(fc.oneof(tableName, customName, fc.constant('set-cookie')), headerValue), { maxLength: 24 })
  .map((pairs) => pairs.flat())
// body_length is sint64 on the wire; this decoder takes zigzag values up to 2^53, so lengths
// up to 2^52 - 1 (4 PiB) round trip (the boundary has its own test below).
// MAX_BODY_LENGTH (2^52 - 1) comes from @ferry/protocol
const bodyLength = fc.oneof(fc.constant(-1), fc.constant(0), fc.nat(), fc.integer({ min: 0, max: MAX_BODY_LENGTH }))
const port = fc.integer({ min: 0, max: 65535 })
const shortText = fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).map((v) => v.replace(/[\r\n\0]/g, ''))

const requestHead: fc.Arbitrary<RequestHead> = fc.record({
  method,
  path,
  authority: fc.oneof(fc.constant(''), fc.domain(), fc.constant('[::1]:8080'), fc.constant('bücher.example')),
  scheme: fc.constantFrom('http', 'https'),
  headers,
  remoteAddress: fc.oneof(fc.constant(''), fc.ipV4(), fc.ipV6()),
  remotePort: port,
  requestId: shortText,
  bodyLength,
  serverName: shortText,
  serverPort: port,
  protocol: fc.constantFrom('HTTP/1.0', 'HTTP/1.1', 'HTTP/2.0')
}, { noNullPrototype: true })

const responseHead: fc.Arbitrary<ResponseHead> = fc.record({
  status: fc.integer({ min: 100, max: 999 }),
  headers,
  bodyLength
}, { noNullPrototype: true })

// ── wire objects for the generated protobufjs encoder ───────────────────────

function wireHeaders (h: HeaderList): ferry.Header.$Properties[] {
  const out: ferry.Header.$Properties[] = []
  for (let i = 0; i < h.length; i += 2) {
    const code = headerCode(h[i]!)
    out.push(code === 0 ? { name: h[i]!, value: h[i + 1]! } : { code, value: h[i + 1]! })
  }
  return out
}

function wireRequest (h: RequestHead): ferry.RequestHead.$Properties {
  const code = methodCode(h.method)
  return {
    method: code,
    methodName: code === 0 ? h.method : '',
    path: h.path,
    authority: h.authority,
    scheme: h.scheme,
    headers: wireHeaders(h.headers),
    remoteAddress: h.remoteAddress,
    remotePort: h.remotePort,
    requestId: h.requestId,
    bodyLength: h.bodyLength,
    serverName: h.serverName,
    serverPort: h.serverPort,
    protocol: h.protocol
  }
}

// ── exact bytes ────────────────────────────────────────────────────────────

describe('head exact bytes', () => {
  test('minimal GET', () => {
    const bytes = encodeRequestHead(emptyRequestHead())
    assert.equal(hex(bytes),
      '0801' + // 1: method = 1 (GET)
      '1a012f' + // 3: path = "/"
      '2a0468747470' + // 5: scheme = "http"
      '6a08485454502f312e31') // 13: protocol = "HTTP/1.1"
    assert.deepEqual(decodeRequestHead(bytes), emptyRequestHead())
  })

  test('GET with table and non-table headers, trusted fields', () => {
    const head: RequestHead = {
      ...emptyRequestHead(),
      path: '/a?b=1',
      authority: 'x.test',
      headers: ['accept', '*/*', 'x-custom', 'v'],
      remoteAddress: '10.0.0.1',
      remotePort: 51000,
      requestId: 'r1',
      serverName: 's',
      serverPort: 80
    }
    const bytes = encodeRequestHead(head)
    assert.equal(hex(bytes),
      '0801' +
      '1a062f613f623d31' + // path "/a?b=1"
      '2206782e74657374' + // authority "x.test"
      '2a0468747470' +
      '3207' + '0801' + '1a032a2f2a' + // header {code 1 (accept), value "*/*"}
      '320d' + '1208782d637573746f6d' + '1a0176' + // header {name "x-custom", value "v"}
      '3a0831302e302e302e31' + // remote_address
      '40b88e03' + // remote_port 51000
      '4a027231' + // request_id "r1"
      '5a0173' + // server_name "s"
      '6050' + // server_port 80
      '6a08485454502f312e31')
    assert.deepEqual(decodeRequestHead(bytes), head)
  })

  test('POST with a custom method, streamed body (-1 zigzag = 1)', () => {
    const head: RequestHead = { ...emptyRequestHead(), method: 'PURGE', path: '/p', bodyLength: -1 }
    assert.equal(hex(encodeRequestHead(head)),
      '120550555247' + '45' + // 2: method_name "PURGE" (method 0 omitted)
      '1a022f70' +
      '2a0468747470' +
      '5001' + // 10: body_length sint64 -1 → zigzag 1
      '6a08485454502f312e31')
    assert.equal(hex(encodeRequestHead({ ...head, method: 'POST', bodyLength: 5 })).slice(0, 4), '0803')
    assert.ok(hex(encodeRequestHead({ ...head, method: 'POST', bodyLength: 5 })).includes('500a'), 'sint64 5 → zigzag 10')
  })

  test('response: status, headers, body length', () => {
    const head: ResponseHead = { status: 200, headers: ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2'], bodyLength: 5 }
    const bytes = encodeResponseHead(head)
    assert.equal(hex(bytes),
      '08c801' + // 1: status 200
      '120e' + '0809' + '1a0a746578742f706c61696e' + // header {code 9, "text/plain"}
      '1207' + '0814' + '1a03613d31' + // header {code 20 (set-cookie), "a=1"}
      '1207' + '0814' + '1a03623d32' + // header {code 20, "b=2"}
      '180a') // 3: body_length 5 → zigzag 10
    assert.deepEqual(decodeResponseHead(bytes), head)
  })

  test('an empty header value is omitted on the wire and decodes as ""', () => {
    const bytes = encodeResponseHead({ status: 204, headers: ['etag', ''], bodyLength: 0 })
    assert.equal(hex(bytes), '08cc01' + '1202080c')
    assert.deepEqual(decodeResponseHead(bytes), { status: 204, headers: ['etag', ''], bodyLength: 0 })
  })

  test('a long head gets a multi-byte length prefix (fields moved, not truncated)', () => {
    const value = 'v'.repeat(200)
    const bytes = encodeResponseHead({ status: 200, headers: ['x-long', value], bodyLength: 0 })
    // header body: name (2+6) + value (1 + 2-byte length + 200) = 211 = 0xd3 0x01
    assert.equal(hex(bytes.subarray(0, 8)), '08c801' + '12d301' + '1206')
    assert.deepEqual(decodeResponseHead(bytes).headers, ['x-long', value])
  })
})

// ── properties ─────────────────────────────────────────────────────────────

describe('head round trips (fast-check)', () => {
  test('RequestHead: decode(encode(h)) deep-equals h (500 runs)', () => {
    fc.assert(fc.property(requestHead, (h) => {
      assert.deepEqual(decodeRequestHead(encodeRequestHead(h)), h)
    }), { numRuns: 500 })
  })

  test('ResponseHead: decode(encode(h)) deep-equals h (500 runs)', () => {
    fc.assert(fc.property(responseHead, (h) => {
      assert.deepEqual(decodeResponseHead(encodeResponseHead(h)), h)
    }), { numRuns: 500 })
  })

  test('encoded bytes equal the generated protobufjs encoder\'s, and protobufjs decodes ours (300 runs)', () => {
    fc.assert(fc.property(requestHead, responseHead, (req, res) => {
      const ours = encodeRequestHead(req)
      assert.equal(hex(ours), hex(ferry.RequestHead.encode(wireRequest(req)).finish()))
      const back = ferry.RequestHead.decode(ours)
      assert.equal(back.path, req.path)
      assert.equal(back.headers.length, req.headers.length / 2)
      const resBytes = encodeResponseHead(res)
      assert.equal(hex(resBytes), hex(ferry.ResponseHead.encode({ status: res.status, headers: wireHeaders(res.headers), bodyLength: res.bodyLength }).finish()))
    }), { numRuns: 300 })
  })

  test('a head encoded by another peer — table names as strings, fields reversed, unknown fields — decodes the same (300 runs)', () => {
    fc.assert(fc.property(requestHead, fc.uint8Array({ maxLength: 20 }), (h, unknownBytes) => {
      const w = wireRequest(h)
      // table names as strings (code 0): allowed, and decode to the same name
      w.headers = []
      for (let i = 0; i < h.headers.length; i += 2) w.headers.push({ name: h.headers[i]!, value: h.headers[i + 1]! })
      const fields: Uint8Array[] = []
      const one = (props: ferry.RequestHead.$Properties): void => { fields.push(ferry.RequestHead.encode(props).finish()) }
      // each field encoded alone, then concatenated in reverse order (repeated headers kept in order)
      for (const [k, v] of Object.entries(w).reverse()) {
        if (k !== 'headers') one({ [k]: v } as ferry.RequestHead.$Properties)
      }
      const headerBytes = ferry.RequestHead.encode({ headers: w.headers }).finish()
      // unknown field 15 (length-delimited) and 16 (varint): must be skipped
      const unknown = Buffer.concat([Buffer.from([0x7a, unknownBytes.length]), unknownBytes, Buffer.from([0x80, 0x01, 0x2a])])
      const bytes = Buffer.concat([...fields.slice(0, 3), unknown, headerBytes, ...fields.slice(3)])
      assert.deepEqual(decodeRequestHead(bytes), h)
    }), { numRuns: 300 })
  })
})

describe('head decoding details', () => {
  test('a missing scheme decodes as "http" and a missing protocol as "HTTP/1.1"', () => {
    const bytes = ferry.RequestHead.encode({ method: 1, path: '/' }).finish()
    assert.equal(hex(bytes), '08011a012f')
    const h = decodeRequestHead(bytes)
    assert.equal(h.scheme, 'http')
    assert.equal(h.protocol, 'HTTP/1.1')
  })

  test('body_length: 2^52 - 1 round trips; 2^52 and beyond are FERRY_ERR_HEAD_INVALID on encode and decode', () => {
    const ok = { status: 200, headers: [], bodyLength: MAX_BODY_LENGTH }
    assert.deepEqual(decodeResponseHead(encodeResponseHead(ok)), ok)
    assert.throws(() => encodeResponseHead({ status: 200, headers: [], bodyLength: 2 ** 52 }), { code: 'FERRY_ERR_HEAD_INVALID' })
    assert.throws(() => encodeRequestHead({ ...emptyRequestHead(), bodyLength: -2 }), { code: 'FERRY_ERR_HEAD_INVALID' })
    // zigzag(2^52) = 2^53 = 7 × 7 zero bits + 0x10: varint 80 80 80 80 80 80 80 10 (another peer may send it)
    const big = unhex(`08c801${'18'}${'80'.repeat(7)}10`)
    assert.throws(() => decodeResponseHead(big), { code: 'FERRY_ERR_HEAD_INVALID' })
  })

  test('"*" is a valid path (OPTIONS *)', () => {
    const h = { ...emptyRequestHead(), method: 'OPTIONS', path: '*' }
    assert.deepEqual(decodeRequestHead(encodeRequestHead(h)), h)
  })

  test('a later occurrence of a scalar field wins (protobuf rule)', () => {
    const bytes = unhex('0801 1a012f 1a022f62')
    assert.equal(decodeRequestHead(bytes).path, '/b')
  })

  test('decode works on a view into a larger buffer', () => {
    const inner = encodeResponseHead({ status: 404, headers: ['x-a', 'b'], bodyLength: 0 })
    const outer = Buffer.concat([Buffer.from('garbage'), inner, Buffer.from('more')])
    assert.deepEqual(decodeResponseHead(outer.subarray(7, 7 + inner.length)), { status: 404, headers: ['x-a', 'b'], bodyLength: 0 })
    assert.deepEqual(decodeResponseHead(new Uint8Array(inner)), { status: 404, headers: ['x-a', 'b'], bodyLength: 0 })
  })

  test('encoding does not alias: a second encode leaves the first result intact', () => {
    const a = encodeRequestHead({ ...emptyRequestHead(), path: '/first' })
    const copy = hex(a)
    encodeRequestHead({ ...emptyRequestHead(), path: '/second-one-longer', headers: ['x', 'y'.repeat(100000)] })
    assert.equal(hex(a), copy)
  })
})

// The decoder answers fields that repeat (scheme, authority, a header value per table code, a
// header name sent as a string, …) from the last value seen in the same slot when the bytes
// are equal, and the encoder copies the bytes of a string it wrote there twice in a row.
// These run heads in sequences so each sees what the ones before left behind.
describe('heads across heads (repeated-field caches)', () => {
  const res = (headers: HeaderList): ResponseHead => ({ status: 200, headers, bodyLength: 0 })

  test('a value of the same length that differs in one byte, or is not plain, decodes its own bytes', () => {
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['content-type', 'text/plain']))).headers, ['content-type', 'text/plain'])
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['content-type', 'text/plaiN']))).headers, ['content-type', 'text/plaiN'])
    // same byte length as "text/plain", one byte replaced by CR: refused, not answered from the cache
    const cr = Buffer.from(encodeResponseHead(res(['content-type', 'text/plain'])))
    cr[cr.length - 1] = 0x0d
    assert.throws(() => decodeResponseHead(cr), { code: 'FERRY_ERR_HEAD_INVALID' })
    // "text/plaé" is 10 bytes as UTF-8, like "text/plain": decoded as UTF-8
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['content-type', 'text/plaé']))).headers, ['content-type', 'text/plaé'])
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['content-type', 'text/plain']))).headers, ['content-type', 'text/plain'])
  })

  test('request fields that repeat (authority, scheme, addresses, protocol) follow the bytes', () => {
    const a: RequestHead = { ...emptyRequestHead(), authority: 'a.example', scheme: 'https', remoteAddress: '10.0.0.1', serverName: 'srv', protocol: 'HTTP/1.1' }
    const b: RequestHead = { ...a, authority: 'b.example', scheme: 'http', remoteAddress: '10.0.0.2', serverName: 'SRV', protocol: 'HTTP/1.0' }
    for (const h of [a, a, b, b, a]) assert.deepEqual(decodeRequestHead(encodeRequestHead(h)), h)
    // authority with a NUL at the cached value's length: refused
    const bad = Buffer.from(encodeRequestHead(a))
    bad[bad.indexOf('a.example') + 1] = 0
    assert.throws(() => decodeRequestHead(bad), { code: 'FERRY_ERR_HEAD_INVALID' })
  })

  test('a header name sent as a string is checked even after a valid name of the same length', () => {
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['x-ab', '1']))).headers, ['x-ab', '1'])
    // the same four bytes but one: "x ab" and "X-ab" are not tokens (names travel lower-case)
    for (const name of ['x ab', 'X-ab']) {
      const bytes = Buffer.from(encodeResponseHead(res(['x-ab', '1'])))
      bytes.write(name, bytes.indexOf('x-ab'), 'latin1')
      assert.throws(() => decodeResponseHead(bytes), { code: 'FERRY_ERR_HEAD_INVALID' })
    }
    assert.deepEqual(decodeResponseHead(encodeResponseHead(res(['x-ab', '2']))).headers, ['x-ab', '2'])
  })

  test('sequences of heads drawn from few values decode each to itself (300 runs)', () => {
    const value = fc.constantFrom('', 'a', 'b', 'text/html', 'text/htmL', 'text/htmé', 'x'.repeat(40), 'y'.repeat(40), 'x'.repeat(200))
    const name = fc.constantFrom('content-type', 'accept', 'x-a', 'x-b', 'x-ab', 'y-ab', 'set-cookie')
    const few: fc.Arbitrary<HeaderList> = fc.array(fc.tuple(name, value), { maxLength: 6 }).map((p) => p.flat())
    const req: fc.Arbitrary<RequestHead> = fc.record({
      authority: fc.constantFrom('', 'a.test', 'b.test', 'bücher.test'),
      scheme: fc.constantFrom('http', 'https'),
      headers: few,
      remoteAddress: fc.constantFrom('127.0.0.1', '127.0.0.2', '::1'),
      serverName: fc.constantFrom('s1', 's2', 'S1'),
      protocol: fc.constantFrom('HTTP/1.0', 'HTTP/1.1')
    }).map((f) => ({ ...emptyRequestHead(), ...f }))
    fc.assert(fc.property(fc.array(fc.tuple(req, few), { minLength: 2, maxLength: 6 }), (heads) => {
      for (const [h, rh] of heads) {
        assert.deepEqual(decodeRequestHead(encodeRequestHead(h)), h)
        assert.deepEqual(decodeResponseHead(encodeResponseHead(res(rh))), res(rh))
      }
    }), { numRuns: 300 })
  })

  test('encoding a value again and again, then another of the same length, gives the generated encoder\'s bytes each time', () => {
    const expect = (h: ResponseHead): string => hex(ferry.ResponseHead.encode({ status: h.status, headers: wireHeaders(h.headers), bodyLength: h.bodyLength }).finish())
    for (const v of ['text/plain', 'text/plain', 'text/plain', 'text/plaiN', 'text/plaé', 'text/plaiN', 'text/plaiN', 'text/plain', 'x'.repeat(64), 'x'.repeat(64), 'x'.repeat(64), 'x'.repeat(65)]) {
      const h = res(['content-type', v])
      assert.equal(hex(encodeResponseHead(h)), expect(h))
      assert.equal(hex(encodeResponseHeadView(h)), expect(h))
    }
  })

  test('sequences of heads drawn from few values encode to the generated encoder\'s bytes, as copies and as views (300 runs)', () => {
    const value = fc.constantFrom('', 'a', 'b', 'text/html', 'text/htmL', 'text/htmé', 'x'.repeat(40), 'x'.repeat(64), 'x'.repeat(200))
    const few: fc.Arbitrary<HeaderList> = fc.array(fc.tuple(fc.constantFrom('content-type', 'accept', 'x-a'), value), { maxLength: 4 }).map((p) => p.flat())
    const req: fc.Arbitrary<RequestHead> = fc.record({
      authority: fc.constantFrom('', 'a.test', 'b.test', 'bücher.test'),
      scheme: fc.constantFrom('http', 'https'),
      headers: few,
      serverName: fc.constantFrom('s1', 's2', 'S1'),
      protocol: fc.constantFrom('HTTP/1.0', 'HTTP/1.1')
    }).map((f) => ({ ...emptyRequestHead(), ...f }))
    fc.assert(fc.property(fc.array(req, { minLength: 2, maxLength: 8 }), (heads) => {
      for (const h of heads) {
        const expect = hex(ferry.RequestHead.encode(wireRequest(h)).finish())
        assert.equal(hex(encodeRequestHeadView(h)), expect)
        assert.equal(hex(encodeRequestHead(h)), expect)
      }
    }), { numRuns: 300 })
  })

  test('encoded heads stay intact across many encodes, slab changes and heads larger than a slab', () => {
    const kept: [Buffer, string][] = []
    for (let i = 0; i < 2000; i++) {
      const big = i % 250 === 0 ? ['x-big', 'v'.repeat(20000 + i)] : []
      const h = { ...emptyRequestHead(), path: `/${i}`, requestId: String(i), headers: ['x-n', String(i), ...big] }
      const b = encodeRequestHead(h)
      kept.push([b, hex(ferry.RequestHead.encode(wireRequest(h)).finish())])
      // a view is written where the next head goes: same lengths recur at moving positions
      const v = { ...h, path: `/v/${i % 10}` }
      assert.equal(hex(encodeRequestHeadView(v)), hex(ferry.RequestHead.encode(wireRequest(v)).finish()))
    }
    for (const [b, expect] of kept) assert.equal(hex(b), expect)
  })
})
