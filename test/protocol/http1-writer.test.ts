/**
 * encodeHttp1ResponseHead: exact bytes, framing choices (Content-Length or close; none for
 * 1xx/204/304), refusal of header injection, and writer → parser round trips (fast-check).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { encodeHttp1ResponseHead, FerryError, Http1ResponseParser, type ResponseHead, statusLine } from '@ferry/protocol'
import fc from 'fast-check'

function expectInvalid (fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FerryError, String(err))
    assert.equal(err.code, 'FERRY_ERR_HTTP1_HEADER_INVALID')
    assert.equal(err.statusCode, 500)
    return true
  })
}

const text = (h: ResponseHead): string => encodeHttp1ResponseHead(h).toString('latin1')

describe('encodeHttp1ResponseHead bytes', () => {
  test('status line, headers as given, content-length from bodyLength, blank line', () => {
    assert.equal(text({ status: 200, headers: ['content-type', 'text/plain', 'x-a', '1'], bodyLength: 5 }),
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-a: 1\r\ncontent-length: 5\r\n\r\n')
    assert.equal(text({ status: 404, headers: [], bodyLength: 0 }), 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')
  })

  test('bodyLength -1: no length, the body ends with the connection (never chunked)', () => {
    assert.equal(text({ status: 200, headers: ['content-type', 'text/event-stream'], bodyLength: -1 }),
      'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n')
  })

  test('framing headers the handler set are replaced by the writer\'s own', () => {
    assert.equal(text({ status: 200, headers: ['content-length', '999', 'transfer-encoding', 'chunked', 'x', 'y'], bodyLength: 3 }),
      'HTTP/1.1 200 OK\r\nx: y\r\ncontent-length: 3\r\n\r\n')
    assert.equal(text({ status: 200, headers: ['transfer-encoding', 'chunked'], bodyLength: -1 }), 'HTTP/1.1 200 OK\r\n\r\n')
  })

  test('1xx, 204 and 304 never get a content-length', () => {
    assert.equal(text({ status: 204, headers: ['x', '1'], bodyLength: 0 }), 'HTTP/1.1 204 No Content\r\nx: 1\r\n\r\n')
    assert.equal(text({ status: 304, headers: ['etag', '"a"', 'content-length', '10'], bodyLength: 10 }), 'HTTP/1.1 304 Not Modified\r\netag: "a"\r\n\r\n')
    assert.equal(text({ status: 103, headers: ['link', '</a.css>; rel=preload'], bodyLength: 0 }), 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n')
  })

  test('repeated headers stay separate lines, in order', () => {
    assert.equal(text({ status: 200, headers: ['set-cookie', 'a=1', 'x', '2', 'set-cookie', 'b=2'], bodyLength: 0 }),
      'HTTP/1.1 200 OK\r\nset-cookie: a=1\r\nx: 2\r\nset-cookie: b=2\r\ncontent-length: 0\r\n\r\n')
  })

  test('values are latin1 bytes; empty values allowed', () => {
    const buf = encodeHttp1ResponseHead({ status: 200, headers: ['x-l', 'caf\u00e9', 'x-e', ''], bodyLength: 0 })
    assert.equal(buf.toString('hex'), Buffer.from('HTTP/1.1 200 OK\r\nx-l: caf\xe9\r\nx-e: \r\ncontent-length: 0\r\n\r\n', 'latin1').toString('hex'))
  })

  test('a body passed along is written right after the head, in the same buffer', () => {
    const head: ResponseHead = { status: 200, headers: ['content-type', 'text/plain'], bodyLength: 11 }
    const body = new Uint8Array(Buffer.from('hello world'))
    const both = encodeHttp1ResponseHead(head, body)
    assert.equal(both.toString('latin1'), `${text(head)}hello world`)
    assert.equal(both.byteLength, encodeHttp1ResponseHead(head).byteLength + 11, 'no slack after the body')
    const bin = new Uint8Array(256).map((_, i) => i)
    assert.deepEqual([...encodeHttp1ResponseHead({ status: 200, headers: [], bodyLength: 256 }, bin).subarray(-256)], [...bin], 'bytes copied as they are')
    assert.equal(encodeHttp1ResponseHead(head, new Uint8Array(0)).toString('latin1'), text(head), 'an empty body adds nothing')
    expectInvalid(() => encodeHttp1ResponseHead({ status: 200, headers: ['x', 'a\r\nb'], bodyLength: 1 }, new Uint8Array(1)))
  })

  test('reason phrases: Node\'s table, "Unknown" otherwise; statusLine is cached', () => {
    assert.equal(statusLine(599), 'HTTP/1.1 599 Unknown\r\n')
    assert.equal(statusLine(418), 'HTTP/1.1 418 I\'m a Teapot\r\n')
    assert.equal(statusLine(200), statusLine(200))
  })
})

describe('encodeHttp1ResponseHead refuses what could split a response', () => {
  test('CR, LF or NUL in a value; a char above U+00FF', () => {
    for (const v of ['a\r\nx-injected: 1', 'a\nb', 'a\rb', 'a\0b', '\u20ac']) {
      expectInvalid(() => encodeHttp1ResponseHead({ status: 200, headers: ['x', v], bodyLength: 0 }))
    }
  })

  test('a name that is not a token', () => {
    for (const n of ['', 'a b', 'a:b', 'x\r\ny', 'caf\u00e9', 'a(b)', 'a"b']) {
      expectInvalid(() => encodeHttp1ResponseHead({ status: 200, headers: [n, 'v'], bodyLength: 0 }))
    }
  })

  test('a status outside 100-999', () => {
    for (const s of [0, 99, 1000, 200.5, Number.NaN]) {
      expectInvalid(() => encodeHttp1ResponseHead({ status: s, headers: [], bodyLength: 0 }))
    }
  })
})

const TOKEN = [...'abcdefghijklmnopqrstuvwxyz0123456789-!#$%&\'*+.^_`|~']
const nameArb = fc.array(fc.constantFrom(...TOKEN), { minLength: 1, maxLength: 16 }).map((a) => a.join(''))
  .filter((n) => n !== 'content-length' && n !== 'transfer-encoding' && n !== 'status')
// field values: visible latin1 and inner SP/HTAB (the parser trims the ends)
const valueArb = fc.array(fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constantFrom(0x20, 0x09)), { maxLength: 40 })
  .map((a) => String.fromCharCode(...a).replace(/^[ \t]+|[ \t]+$/g, ''))

describe('writer → parser round trip', () => {
  test('random heads and bodies, fed at random split points (fast-check, 200 runs)', () => {
    fc.assert(fc.property(
      fc.integer({ min: 200, max: 599 }),
      fc.array(fc.tuple(nameArb, valueArb), { maxLength: 12 }),
      fc.oneof(fc.integer({ min: 0, max: 2000 }), fc.constant(-1)),
      fc.array(fc.nat(), { maxLength: 8 }),
      (status, pairs, bodyLength, cuts) => {
        const headers = pairs.flat()
        const noBody = status === 204 || status === 304
        const body = Buffer.alloc(noBody ? 0 : Math.max(bodyLength, 0) || (bodyLength < 0 ? 77 : 0), 0x61)
        const headBuf = encodeHttp1ResponseHead({ status, headers, bodyLength })
        const all = Buffer.concat([headBuf, body])
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((a, c) => a - c)
        let got: ResponseHead | null = null
        const parts: Buffer[] = []
        let ended = false
        const p = new Http1ResponseParser({
          onHead (h) { got = h },
          onBody (c) { parts.push(Buffer.from(c)) },
          onEnd () { ended = true }
        })
        let prev = 0
        for (const at of [...points, all.length]) {
          p.push(all.subarray(prev, at))
          prev = at
        }
        p.end()
        const wantHeaders = noBody || bodyLength < 0 ? headers : [...headers, 'content-length', String(bodyLength)]
        assert.deepEqual(got, { status, headers: wantHeaders, bodyLength: noBody ? 0 : bodyLength })
        assert.deepEqual(Buffer.concat(parts), body)
        assert.equal(ended, true)
      }
    ), { numRuns: 200 })
  })
})
