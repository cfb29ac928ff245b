/**
 * UwsgiDecoder over real nginx packets (test/fixtures/nginx-golden, captured from Debian's
 * nginx 1.22.1 by scripts/capture-nginx-golden.ts: no nginx needed here) fed whole, byte by
 * byte and at random split points; body views; and a malformed corpus, each with its code.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { FerryError, parseUwsgiVars, type RequestHead, UwsgiDecoder, type UwsgiDecoderOptions, uwsgiVarsToHead } from '@ferry/protocol'
import fc from 'fast-check'
import { bytewise, splitAtWrapped } from '../helpers/chunks.ts'
import { GOLDEN_CASES } from '../fixtures/nginx-golden/cases.ts'
import { buildPacket, packetVars } from '../fixtures/nginx-golden/capture.ts'

const FIXTURES = new URL('../fixtures/nginx-golden/', import.meta.url)
const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as {
  nginx: string
  cases: Array<{ name: string, file: string, remotePort: number, serverPort: number }>
}

interface Decoded {
  head: RequestHead | null
  vars: string[]
  modifier2: number
  body: Buffer
  bodyChunks: Buffer[]
  ended: number
  decoder: UwsgiDecoder
}

function decode (chunks: Buffer[], options?: UwsgiDecoderOptions, end = true): Decoded {
  const out: Decoded = { head: null, vars: [], modifier2: -1, body: Buffer.alloc(0), bodyChunks: [], ended: 0, decoder: null as unknown as UwsgiDecoder }
  const parts: Buffer[] = []
  out.decoder = new UwsgiDecoder({
    onHead (head, vars, modifier2) {
      assert.equal(out.head, null, 'one head')
      out.head = head
      out.vars = vars
      out.modifier2 = modifier2
    },
    onBody (chunk) {
      assert.ok(out.head !== null, 'body after head')
      assert.equal(out.ended, 0, 'no body after end')
      out.bodyChunks.push(chunk)
      parts.push(Buffer.from(chunk))
    },
    onEnd () { out.ended++ }
  }, options)
  for (const c of chunks) out.decoder.push(c)
  if (end) out.decoder.end()
  out.body = Buffer.concat(parts)
  return out
}



function expectCode (fn: () => unknown, code: string, statusCode?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FerryError, String(err))
    assert.equal(err.code, code)
    if (statusCode !== undefined) assert.equal(err.statusCode, statusCode)
    return true
  })
}

/** What a ferry app-server should see for a golden case nginx forwarded. */
function expectedHead (name: string, remotePort: number, serverPort: number): RequestHead {
  const c = GOLDEN_CASES.find((g) => g.name === name)!
  const front = c.head(remotePort, serverPort)
  // Debian's uwsgi_params: HTTP_HOST = $host (lower-case, no port) first, the client's Host dropped
  const host = front.authority.toLowerCase().replace(/:\d+$/, '')
  const headers = host === '' ? [] : ['host', host]
  for (let i = 0; i < front.headers.length; i += 2) {
    const n = front.headers[i]!
    if (n === 'host' || n === 'transfer-encoding') continue
    headers.push(n, front.headers[i + 1]!)
  }
  if (front.bodyLength > 0 && !headers.includes('content-length')) headers.push('content-length', String(front.bodyLength))
  return { ...front, authority: host, headers }
}

describe('real nginx packets (fixtures)', () => {
  test('the manifest lists every golden case', () => {
    assert.deepEqual(manifest.cases.map((c) => c.name).sort(), GOLDEN_CASES.map((c) => c.name).sort())
    assert.match(manifest.nginx, /^\d+\.\d+\.\d+$/)
  })

  for (const entry of manifest.cases) {
    const bytes = readFileSync(new URL(entry.file, FIXTURES))
    const size = bytes.readUInt16LE(1)
    const expected = expectedHead(entry.name, entry.remotePort, entry.serverPort)

    test(`${entry.name}: whole, byte by byte and at random splits`, () => {
      const whole = decode([bytes])
      assert.deepEqual(whole.head, expected)
      assert.equal(whole.ended, 1)
      assert.equal(whole.modifier2, 0)
      assert.equal(whole.decoder.done, true)
      assert.equal(whole.decoder.extraBytes, 0)
      assert.deepEqual(whole.body, bytes.subarray(4 + size))
      assert.deepEqual(whole.vars, packetVars(bytes).flat())
      for (const chunk of whole.bodyChunks) assert.equal(chunk.buffer, bytes.buffer, 'body handed out as views')

      const byByte = decode(bytewise(bytes))
      assert.deepEqual(byByte.head, expected)
      assert.deepEqual(byByte.body, whole.body)
      assert.equal(byByte.ended, 1)

      fc.assert(fc.property(fc.array(fc.nat(bytes.length), { maxLength: 8 }), (cuts) => {
        const d = decode(splitAtWrapped(bytes, cuts))
        assert.deepEqual(d.head, expected)
        assert.deepEqual(d.body, whole.body)
        assert.equal(d.ended, 1)
      }), { numRuns: 100 })
    })
  }

  test('literal heads for two packets (no derivation)', () => {
    const get = manifest.cases.find((c) => c.name === 'get-minimal')!
    assert.deepEqual(decode([readFileSync(new URL(get.file, FIXTURES))]).head, {
      method: 'GET',
      path: '/',
      authority: 'example.test',
      scheme: 'http',
      headers: ['host', 'example.test'],
      remoteAddress: '127.0.0.1',
      remotePort: get.remotePort,
      requestId: '',
      bodyLength: 0,
      serverName: '',
      serverPort: get.serverPort,
      protocol: 'HTTP/1.1'
    })
    const chunked = manifest.cases.find((c) => c.name === 'post-chunked')!
    const d = decode([readFileSync(new URL(chunked.file, FIXTURES))])
    assert.equal(d.head!.bodyLength, 11)
    assert.deepEqual(d.head!.headers, ['host', 'example.test', 'content-length', '11'], 'transfer-encoding left out, length from CONTENT_LENGTH')
    assert.equal(d.body.toString(), 'hello world')
    assert.ok(d.vars.includes('HTTP_TRANSFER_ENCODING'), 'still in the raw vars')
  })
})

// a valid packet from vars, with a body
function packet (vars: Array<[string, string]>, body = ''): Buffer {
  return Buffer.concat([buildPacket(vars), Buffer.from(body)])
}
const BASE: Array<[string, string]> = [['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/x']]

describe('head mapping', () => {
  test('fallbacks: PATH_INFO + QUERY_STRING, SERVER_NAME, HTTPS, CONTENT_TYPE/LENGTH, X-Request-Id', () => {
    const d = decode([packet([
      ['REQUEST_METHOD', 'POST'], ['PATH_INFO', '/p'], ['QUERY_STRING', 'a=1'], ['SERVER_NAME', 'srv'], ['HTTPS', 'on'],
      ['CONTENT_TYPE', 'text/plain'], ['CONTENT_LENGTH', '3'], ['HTTP_X_REQUEST_ID', 'rid-1'], ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['HTTP_X_MULTI_WORD_NAME', 'v']
    ], 'abc')])
    assert.deepEqual(d.head, {
      method: 'POST',
      path: '/p?a=1',
      authority: 'srv',
      scheme: 'https',
      headers: ['x-request-id', 'rid-1', 'x-multi-word-name', 'v', 'content-length', '3', 'content-type', 'text/plain'],
      remoteAddress: '',
      remotePort: 0,
      requestId: 'rid-1',
      bodyLength: 3,
      serverName: 'srv',
      serverPort: 0,
      protocol: 'HTTP/1.1'
    })
    assert.equal(d.body.toString(), 'abc')
  })

  test('REQUEST_URI bytes: UTF-8 decoded when valid, other non-ASCII bytes %-encoded', () => {
    const raw = (uri: Buffer) => buildPacket([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', uri.toString('latin1')]])
    assert.equal(decode([raw(Buffer.from('/é?ü', 'utf8'))]).head!.path, '/é?ü')
    assert.equal(decode([raw(Buffer.from([0x2f, 0x61, 0xff, 0xfe]))]).head!.path, '/a%FF%FE')
  })

  test('header values are latin1 (the client\'s bytes, one char each)', () => {
    const d = decode([buildPacket([...BASE, ['HTTP_X_V', 'caf\xc3\xa9']])])
    assert.deepEqual(d.head!.headers, ['x-v', 'caf\xc3\xa9'])
  })

  test('uwsgiVarsToHead and parseUwsgiVars work on their own', () => {
    const block = buildPacket(BASE).subarray(4)
    const vars = parseUwsgiVars(block)
    assert.deepEqual(vars, ['REQUEST_METHOD', 'GET', 'REQUEST_URI', '/x'])
    assert.equal(uwsgiVarsToHead(vars).path, '/x')
  })

  test('bytes after the body are counted and dropped', () => {
    const d = decode([packet([...BASE, ['CONTENT_LENGTH', '2']], 'okEXTRA')])
    assert.equal(d.body.toString(), 'ok')
    assert.equal(d.decoder.extraBytes, 5)
    assert.equal(d.ended, 1)
  })

  test('one chunk buffer reused for many packets (as a socket read buffer may be): keys stay right', () => {
    const scratch = Buffer.alloc(512)
    for (let round = 0; round < 300; round++) {
      const name = `X_${String.fromCharCode(65 + (round % 26))}${round % 7}`
      const p = buildPacket([...BASE, [`HTTP_${name}`, String(round)], ['SERVER_NAME', `s${round % 3}`]])
      scratch.fill(round & 0xff)
      p.copy(scratch)
      const d = decode([scratch.subarray(0, p.length)])
      assert.deepEqual(d.head!.headers, [name.toLowerCase().replace('_', '-'), String(round)])
      assert.equal(d.head!.serverName, `s${round % 3}`)
    }
  })

  test('maxVarsSize: a block of exactly the limit is accepted', () => {
    const p = buildPacket(BASE)
    const size = p.readUInt16LE(1)
    assert.equal(decode([p], { maxVarsSize: size }).head!.path, '/x')
  })
})

describe('malformed corpus', () => {
  const good = packet([...BASE, ['CONTENT_LENGTH', '10']], '0123456789')

  test('modifier1 other than 0 → FERRY_ERR_UWSGI_MODIFIER, on the header alone', () => {
    for (const m of [1, 5, 0x89, 255]) {
      const b = Buffer.from(good)
      b[0] = m
      expectCode(() => decode([b.subarray(0, 4)], undefined, false), 'FERRY_ERR_UWSGI_MODIFIER', 400)
      expectCode(() => decode(bytewise(b), undefined, false), 'FERRY_ERR_UWSGI_MODIFIER', 400)
    }
  })

  test('datasize beyond the buffer limit → FERRY_ERR_UWSGI_TOO_LARGE as soon as the header is read', () => {
    const header = Buffer.from([0, 0x88, 0x13, 0]) // 5000
    expectCode(() => decode([header], { maxVarsSize: 4096 }, false), 'FERRY_ERR_UWSGI_TOO_LARGE', 431)
    expectCode(() => decode(bytewise(header), { maxVarsSize: 4096 }, false), 'FERRY_ERR_UWSGI_TOO_LARGE', 431)
    const size = good.readUInt16LE(1)
    expectCode(() => decode([good], { maxVarsSize: size - 1 }), 'FERRY_ERR_UWSGI_TOO_LARGE')
  })

  test('key length past the block → FERRY_ERR_UWSGI_VARS', () => {
    const vars = Buffer.from([100, 0, 0x41, 0x42, 0, 0]) // keylen 100 in a 6-byte block
    const b = Buffer.concat([Buffer.from([0, vars.length, 0, 0]), vars])
    expectCode(() => decode([b]), 'FERRY_ERR_UWSGI_VARS', 400)
    expectCode(() => decode(bytewise(b)), 'FERRY_ERR_UWSGI_VARS', 400)
  })

  test('value length that lies → FERRY_ERR_UWSGI_VARS', () => {
    const b = Buffer.from(good)
    // first var is REQUEST_METHOD (keylen 14): its value length sits at 4 + 2 + 14
    b.writeUInt16LE(0x4000, 4 + 2 + 14)
    expectCode(() => decode([b]), 'FERRY_ERR_UWSGI_VARS', 400)
    // one byte short of a key/value length pair: a lone trailing byte
    const inner = buildPacket(BASE).subarray(4)
    const lone = Buffer.concat([Buffer.from([0, inner.length + 1, 0, 0]), inner, Buffer.from([7])])
    expectCode(() => decode([lone]), 'FERRY_ERR_UWSGI_VARS')
    // a key length with no room for the value length after it
    const cut = Buffer.concat([inner, Buffer.from([1, 0, 0x41])])
    expectCode(() => decode([Buffer.concat([Buffer.from([0, cut.length, 0, 0]), cut])]), 'FERRY_ERR_UWSGI_VARS')
  })

  test('truncated packet → FERRY_ERR_UWSGI_TRUNCATED at end()', () => {
    for (const cut of [0, 1, 3, 4, 10, good.length - 11, good.length - 10, good.length - 1]) {
      expectCode(() => decode([good.subarray(0, cut)]), 'FERRY_ERR_UWSGI_TRUNCATED', 400)
      if (cut > 0) expectCode(() => decode(bytewise(good.subarray(0, cut))), 'FERRY_ERR_UWSGI_TRUNCATED', 400)
    }
  })

  test('bad CONTENT_LENGTH, no REQUEST_METHOD, no path → FERRY_ERR_UWSGI_VARS', () => {
    for (const cl of ['12a', '-1', ' 1', '1.5', '0x10', '9'.repeat(16)]) {
      expectCode(() => decode([packet([...BASE, ['CONTENT_LENGTH', cl]])]), 'FERRY_ERR_UWSGI_VARS')
    }
    expectCode(() => decode([packet([['REQUEST_URI', '/x']])]), 'FERRY_ERR_UWSGI_VARS')
    expectCode(() => decode([packet([['REQUEST_METHOD', 'GET'], ['QUERY_STRING', 'a']])]), 'FERRY_ERR_UWSGI_VARS')
    expectCode(() => decode([Buffer.from([0, 0, 0, 0])]), 'FERRY_ERR_UWSGI_VARS')
  })

  test('random mutations of a real packet never throw anything but a FerryError', () => {
    const real = readFileSync(new URL(manifest.cases.find((c) => c.name === 'post-form')!.file, FIXTURES))
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(real.length), (edits, cut) => {
      const b = Buffer.from(real.subarray(0, cut))
      for (const [at, val] of edits) if (at < b.length) b[at] = val
      try {
        decode([b])
      } catch (err) {
        assert.ok(err instanceof FerryError, String(err))
        assert.match(err.code, /^FERRY_ERR_UWSGI_/)
      }
    }), { numRuns: 300 })
  })
})
