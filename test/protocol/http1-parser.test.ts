/**
 * Http1ResponseParser: every fixture fed whole, byte by byte and at random split points
 * (fast-check) gives the same events; body views; a malformed corpus with codes; limits;
 * truncation.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FerryError, type HeaderList, Http1ResponseParser, type Http1ParserOptions, type ResponseHead } from '@ferry/protocol'
import fc from 'fast-check'
import { bytewise, splitAtWrapped } from '../helpers/chunks.ts'

interface Events {
  info: Array<[number, HeaderList]>
  head: ResponseHead | null
  reason: string
  body: string
  chunks: Buffer[]
  trailers: HeaderList | null
  /** Events in order, body pieces merged: 'info', 'head', 'body', 'end'. */
  order: string[]
  parser: Http1ResponseParser
}

function parse (chunks: Buffer[], options: Http1ParserOptions = {}, end = true): Events {
  const ev: Events = { info: [], head: null, reason: '', body: '', chunks: [], trailers: null, order: [], parser: null as unknown as Http1ResponseParser }
  const mark = (e: string) => { if (ev.order[ev.order.length - 1] !== e) ev.order.push(e) }
  ev.parser = new Http1ResponseParser({
    onInformational (status, headers) {
      mark('info')
      ev.info.push([status, headers])
    },
    onHead (head, reason) {
      assert.equal(ev.head, null, 'one final head')
      mark('head')
      ev.head = head
      ev.reason = reason
    },
    onBody (chunk) {
      assert.ok(ev.head !== null && ev.trailers === null)
      mark('body')
      ev.chunks.push(chunk)
      ev.body += chunk.toString('latin1')
    },
    onEnd (trailers) {
      assert.equal(ev.trailers, null, 'one end')
      mark('end')
      ev.trailers = trailers
    }
  }, options)
  for (const c of chunks) ev.parser.push(c)
  if (end) ev.parser.end()
  return ev
}

const b = (s: string): Buffer => Buffer.from(s, 'latin1')



function expectCode (fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FerryError, String(err))
    assert.equal(err.code, code)
    assert.equal(err.statusCode, 502)
    return true
  })
}

interface Fixture {
  name: string
  input: string
  method?: string
  status: number
  reason: string
  headers: HeaderList
  bodyLength: number
  body: string
  trailers?: HeaderList
  info?: Array<[number, HeaderList]>
  /** Complete without end() (framed), or only once the connection closes. */
  untilClose?: boolean
}

const FIXTURES: Fixture[] = [
  {
    name: 'status line, Content-Length',
    input: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
    status: 200, reason: 'OK', headers: ['content-type', 'text/plain', 'content-length', '5'], bodyLength: 5, body: 'hello'
  },
  {
    name: 'HTTP/1.0, no reason phrase, empty body',
    input: 'HTTP/1.0 404\r\nContent-Length: 0\r\n\r\n',
    status: 404, reason: '', headers: ['content-length', '0'], bodyLength: 0, body: ''
  },
  {
    name: 'reason phrase with spaces and latin1 bytes',
    input: 'HTTP/1.1 418 I\'m a teapot \xe9\r\nContent-Length: 1\r\n\r\nx',
    status: 418, reason: 'I\'m a teapot \xe9', headers: ['content-length', '1'], bodyLength: 1, body: 'x'
  },
  {
    name: 'CGI Status header (taken out of the headers)',
    input: 'Content-Type: text/html\r\nStatus: 404 Not Found\r\nContent-Length: 4\r\n\r\nnope',
    status: 404, reason: 'Not Found', headers: ['content-type', 'text/html', 'content-length', '4'], bodyLength: 4, body: 'nope'
  },
  {
    name: 'CGI Location without Status → 302',
    input: 'Location: /next\r\nContent-Length: 0\r\n\r\n',
    status: 302, reason: 'Moved Temporarily', headers: ['location', '/next', 'content-length', '0'], bodyLength: 0, body: ''
  },
  {
    name: 'CGI without Status → 200, body until close',
    input: 'Content-Type: text/plain\r\n\r\nhi there',
    status: 200, reason: 'OK', headers: ['content-type', 'text/plain'], bodyLength: -1, body: 'hi there', untilClose: true
  },
  {
    name: 'chunked with extensions and trailers',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=val\r\nhello\r\nA ; ext="q"\r\n0123456789\r\n1f\r\n' +
      'abcdefghijklmnopqrstuvwxyzABCDE\r\n0;last\r\nX-Checksum: abc\r\nX-Other:  1 \r\n\r\n',
    status: 200, reason: 'OK', headers: ['transfer-encoding', 'chunked'], bodyLength: -1,
    body: 'hello0123456789abcdefghijklmnopqrstuvwxyzABCDE', trailers: ['x-checksum', 'abc', 'x-other', '1']
  },
  {
    name: 'chunked with bare LF line ends, Transfer-Encoding list ending in chunked',
    input: 'HTTP/1.1 201 Created\nTransfer-Encoding: gzip, chunked\n\n3\nabc\n0\n\n',
    status: 201, reason: 'Created', headers: ['transfer-encoding', 'gzip, chunked'], bodyLength: -1, body: 'abc', trailers: []
  },
  {
    name: 'no length: body until the connection closes',
    input: 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nstream until close',
    status: 200, reason: 'OK', headers: ['content-type', 'text/plain'], bodyLength: -1, body: 'stream until close', untilClose: true
  },
  {
    name: 'Transfer-Encoding not ending in chunked: until close',
    input: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b\x08',
    status: 200, reason: 'OK', headers: ['transfer-encoding', 'gzip'], bodyLength: -1, body: '\x1f\x8b\x08', untilClose: true
  },
  {
    name: 'repeated Set-Cookie kept in order, names lower-cased, values trimmed',
    input: 'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nX-A:   spaced value \t\r\nset-cookie: b=2\r\nX-Empty:\r\nSET-COOKIE: c=3; HttpOnly\r\nContent-Length: 0\r\n\r\n',
    status: 200, reason: 'OK',
    headers: ['set-cookie', 'a=1; Path=/', 'x-a', 'spaced value', 'set-cookie', 'b=2', 'x-empty', '', 'set-cookie', 'c=3; HttpOnly', 'content-length', '0'],
    bodyLength: 0, body: ''
  },
  {
    name: 'repeated identical Content-Length',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
    status: 200, reason: 'OK', headers: ['content-length', '3', 'content-length', '3'], bodyLength: 3, body: 'abc'
  },
  {
    name: '204: no body',
    input: 'HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n',
    status: 204, reason: 'No Content', headers: ['x-a', '1'], bodyLength: 0, body: ''
  },
  {
    name: '304: no body despite Content-Length',
    input: 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 100\r\n\r\n',
    status: 304, reason: 'Not Modified', headers: ['etag', '"x"', 'content-length', '100'], bodyLength: 0, body: ''
  },
  {
    name: 'response to HEAD: no body despite Content-Length',
    input: 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n',
    method: 'HEAD',
    status: 200, reason: 'OK', headers: ['content-length', '1234'], bodyLength: 0, body: ''
  },
  {
    name: '100 Continue and 103 Early Hints before the final head',
    input: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
    status: 200, reason: 'OK', headers: ['content-length', '2'], bodyLength: 2, body: 'ok',
    info: [[100, []], [103, ['link', '</s.css>; rel=preload']]]
  },
  {
    name: '101 Switching Protocols: every later byte passed on until close',
    input: 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello',
    status: 101, reason: 'Switching Protocols', headers: ['upgrade', 'websocket', 'connection', 'Upgrade'], bodyLength: -1, body: '\x81\x05hello', untilClose: true
  }
]

function check (fx: Fixture, ev: Events): void {
  assert.deepEqual(ev.head, { status: fx.status, headers: fx.headers, bodyLength: fx.bodyLength })
  assert.equal(ev.reason, fx.reason)
  assert.equal(ev.body, fx.body)
  assert.deepEqual(ev.trailers, fx.trailers ?? [])
  assert.deepEqual(ev.info, fx.info ?? [])
  assert.equal(ev.parser.done, true)
  assert.deepEqual(ev.order, [...(fx.info ? ['info'] : []), 'head', ...(fx.body === '' ? [] : ['body']), 'end'])
}

describe('Http1ResponseParser fixtures', () => {
  for (const fx of FIXTURES) {
    test(`${fx.name}: whole, byte by byte, at random splits`, () => {
      const input = b(fx.input)
      const opts = { method: fx.method ?? 'GET' }
      const whole = parse([input], opts)
      check(fx, whole)
      const framed = parse([input], opts, false)
      assert.equal(framed.parser.done, fx.untilClose !== true, 'complete before close unless delimited by close')
      check(fx, parse(bytewise(input), opts))
      fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        check(fx, parse(splitAtWrapped(input, cuts), opts))
      }), { numRuns: 60 })
    })
  }

  test('body pieces are views into the pushed chunk (Content-Length, chunked, until close)', () => {
    for (const name of ['status line, Content-Length', 'chunked with extensions and trailers', 'no length: body until the connection closes']) {
      const input = b(FIXTURES.find((f) => f.name === name)!.input)
      const ev = parse([input])
      assert.ok(ev.chunks.length > 0)
      for (const c of ev.chunks) assert.equal(c.buffer, input.buffer, name)
    }
  })

  test('bytes after a complete response are counted and dropped', () => {
    const ev = parse([b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA')])
    assert.equal(ev.body, 'ok')
    assert.equal(ev.parser.extraBytes, 5)
  })

  test('method can be set after construction (HEAD)', () => {
    const ev = parse([], {}, false)
    ev.parser.method = 'HEAD'
    ev.parser.push(b('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n'))
    assert.equal(ev.head!.bodyLength, 0)
    assert.equal(ev.parser.done, true)
  })
})

describe('Http1ResponseParser limits', () => {
  test('head over maxHeadSize → FERRY_ERR_HTTP1_HEAD_TOO_LARGE, whole or split; at the limit it passes', () => {
    const start = 'HTTP/1.1 200 OK\r\nX-Pad: '
    const end = '\r\nContent-Length: 0\r\n\r\n'
    const at = (size: number) => b(start + 'p'.repeat(size - start.length - end.length) + end)
    const exact = at(100)
    assert.equal(exact.length, 100)
    assert.equal(parse([exact], { maxHeadSize: 100 }).head!.status, 200)
    assert.equal(parse(bytewise(exact), { maxHeadSize: 100 }).head!.status, 200)
    const over = at(101)
    expectCode(() => parse([over], { maxHeadSize: 100 }), 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
    expectCode(() => parse(bytewise(over), { maxHeadSize: 100 }), 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
    expectCode(() => parse([over.subarray(0, 50), over.subarray(50)], { maxHeadSize: 100 }), 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
    // an endless head is refused once past the limit, not buffered without bound
    const p = parse([], { maxHeadSize: 1000 }, false).parser
    expectCode(() => { for (let i = 0; i < 100; i++) p.push(b(`X-H${i}: ${'v'.repeat(20)}\r\n`)) }, 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
    // default limit 64 KiB
    expectCode(() => parse([b(`HTTP/1.1 200 OK\r\nX: ${'v'.repeat(70000)}\r\n\r\n`)]), 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
  })

  test('trailer section over maxHeadSize → FERRY_ERR_HTTP1_HEAD_TOO_LARGE', () => {
    const input = b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: ${'t'.repeat(200)}\r\n\r\n`)
    expectCode(() => parse([input], { maxHeadSize: 100 }), 'FERRY_ERR_HTTP1_HEAD_TOO_LARGE')
  })
})

describe('Http1ResponseParser malformed corpus', () => {
  const PARSE: Array<[string, string]> = [
    ['status code not digits', 'HTTP/1.1 2OO OK\r\n\r\n'],
    ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\n\r\n'],
    ['no space after the code', 'HTTP/1.1 200OK\r\n\r\n'],
    ['short status line', 'HTTP/1.1 20\r\n\r\n'],
    ['space inside a header name', 'HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nX-A : v\r\n\r\n'],
    ['line without a colon', 'HTTP/1.1 200 OK\r\nNoColon\r\n\r\n'],
    ['empty header name', 'HTTP/1.1 200 OK\r\n: v\r\n\r\n'],
    ['obsolete line folding', 'HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\r\n'],
    ['control byte in a value', 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n'],
    ['bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n'],
    ['Content-Length not digits', 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n'],
    ['negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'],
    ['Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['conflicting Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['Transfer-Encoding with Content-Length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n'],
    ['chunk size not hex', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['empty chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n'],
    ['chunk size too large', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000000000000\r\n'],
    ['chunk data not followed by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n'],
    ['CR without LF after the chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello'],
    ['chunk extension too long', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'e'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`],
    ['bad CGI Status', 'Status: abc\r\n\r\n'],
    ['CGI Status with a two-digit code', 'Status: 20 OK\r\n\r\n'],
    ['garbage first line', 'hello world\r\n\r\n'],
    ['blank first line', '\r\nHTTP/1.1 200 OK\r\n\r\n']
  ]
  for (const [name, input] of PARSE) {
    test(`${name} → FERRY_ERR_HTTP1_PARSE (whole and byte by byte)`, () => {
      expectCode(() => parse([b(input)]), 'FERRY_ERR_HTTP1_PARSE')
      expectCode(() => parse(bytewise(b(input))), 'FERRY_ERR_HTTP1_PARSE')
    })
  }

  const TRUNCATED: Array<[string, string]> = [
    ['no response at all', ''],
    ['closed inside the status line', 'HTTP/1.1 20'],
    ['closed inside the head', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'],
    ['closed before Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel'],
    ['closed inside a chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel'],
    ['closed before the last chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n'],
    ['closed inside the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n'],
    ['closed after an informational head', 'HTTP/1.1 100 Continue\r\n\r\n']
  ]
  for (const [name, input] of TRUNCATED) {
    test(`${name} → FERRY_ERR_HTTP1_TRUNCATED at end()`, () => {
      expectCode(() => parse([b(input)]), 'FERRY_ERR_HTTP1_TRUNCATED')
      expectCode(() => parse(bytewise(b(input))), 'FERRY_ERR_HTTP1_TRUNCATED')
    })
  }

  test('random bytes and mutated responses never throw anything but a FerryError', () => {
    const seeds = FIXTURES.map((f) => b(f.input))
    fc.assert(fc.property(fc.nat(seeds.length - 1), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 4 }), (i, edits, cuts) => {
      const input = Buffer.from(seeds[i]!)
      for (const [at, v] of edits) input[at % input.length] = v
      try {
        parse(splitAtWrapped(input, cuts))
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err))
        assert.match(err.code, /^FERRY_ERR_HTTP1_/)
      }
    }), { numRuns: 400 })
  })
})
