/**
 * encodeUwsgiRequest: exact bytes (header, var layout, nginx's param order), $host and
 * $document_uri emulation (the rules checked against real nginx 1.22.1 by
 * test/interop/nginx-golden.test.ts), options, and errors.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  emptyRequestHead, encodeUwsgiRequest, FerryError, nginxHost, nginxPathInfo, type RequestHead, UWSGI_MAX_VARS
} from '@ferry/protocol'
import { buildPacket, packetVars } from '../fixtures/nginx-golden/capture.ts'

function head (extra: Partial<RequestHead> = {}): RequestHead {
  return {
    ...emptyRequestHead(),
    authority: 'example.test',
    headers: ['host', 'example.test'],
    remoteAddress: '10.0.0.9',
    remotePort: 50123,
    serverPort: 8080,
    ...extra
  }
}

const hx = (s: string): string => Buffer.from(s, 'latin1').toString('hex')
const u16 = (n: number): string => Buffer.from([n & 0xff, n >> 8]).toString('hex')
const v = (k: string, val: string): string => u16(k.length) + hx(k) + u16(Buffer.byteLength(val, 'latin1')) + hx(val)

function expectCode (fn: () => unknown, code: string, statusCode: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FerryError)
    assert.equal(err.code, code)
    assert.equal(err.statusCode, statusCode)
    return true
  })
}

describe('encodeUwsgiRequest bytes', () => {
  test('header: modifier1 0, u16le size of the vars block, modifier2 0; vars as u16le len + bytes', () => {
    const b = encodeUwsgiRequest(head())
    const vars =
      v('QUERY_STRING', '') + v('REQUEST_METHOD', 'GET') + v('CONTENT_TYPE', '') + v('CONTENT_LENGTH', '') +
      v('REQUEST_URI', '/') + v('PATH_INFO', '/') + v('DOCUMENT_ROOT', '') + v('SERVER_PROTOCOL', 'HTTP/1.1') +
      v('REQUEST_SCHEME', 'http') + v('REMOTE_ADDR', '10.0.0.9') + v('REMOTE_PORT', '50123') + v('SERVER_PORT', '8080') +
      v('SERVER_NAME', '') + v('HTTP_HOST', 'example.test')
    const size = vars.length / 2
    assert.equal(b.toString('hex'), `00${u16(size)}00${vars}`)
    assert.equal(b.length, 4 + size)
    // spot-check the literal layout of the first var and the header
    assert.equal(b.subarray(0, 4).toString('hex'), `00${(size & 0xff).toString(16).padStart(2, '0')}${(size >> 8).toString(16).padStart(2, '0')}00`)
    assert.equal(b.subarray(4, 20).toString('hex'), '0c00' + '51554552595f535452494e47' + '0000')
  })

  test('POST: CONTENT_TYPE and CONTENT_LENGTH params, and the headers again as HTTP_ vars', () => {
    const b = encodeUwsgiRequest(head({
      method: 'POST',
      path: '/form?x=1&y=%20',
      headers: ['host', 'example.test', 'content-type', 'text/plain', 'content-length', '5', 'x-a-b', 'Q'],
      bodyLength: 5,
      serverName: 'srv'
    }), { documentRoot: '/var/www' })
    assert.deepEqual(packetVars(b), [
      ['QUERY_STRING', 'x=1&y=%20'], ['REQUEST_METHOD', 'POST'], ['CONTENT_TYPE', 'text/plain'], ['CONTENT_LENGTH', '5'],
      ['REQUEST_URI', '/form?x=1&y=%20'], ['PATH_INFO', '/form'], ['DOCUMENT_ROOT', '/var/www'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'], ['REQUEST_SCHEME', 'http'], ['REMOTE_ADDR', '10.0.0.9'], ['REMOTE_PORT', '50123'],
      ['SERVER_PORT', '8080'], ['SERVER_NAME', 'srv'], ['HTTP_HOST', 'example.test'],
      ['HTTP_CONTENT_TYPE', 'text/plain'], ['HTTP_CONTENT_LENGTH', '5'], ['HTTP_X_A_B', 'Q']
    ])
  })

  test('HTTPS "on" only for https, right after REQUEST_SCHEME', () => {
    const keys = (h: RequestHead) => packetVars(encodeUwsgiRequest(h)).map(([k]) => k)
    assert.ok(!keys(head()).includes('HTTPS'))
    const vars = packetVars(encodeUwsgiRequest(head({ scheme: 'https' })))
    const i = vars.findIndex(([k]) => k === 'REQUEST_SCHEME')
    assert.deepEqual(vars.slice(i, i + 2), [['REQUEST_SCHEME', 'https'], ['HTTPS', 'on']])
  })

  test('content-length: 0 header gives CONTENT_LENGTH "0"; none gives ""', () => {
    const get = (h: RequestHead, k: string) => packetVars(encodeUwsgiRequest(h)).find(([key]) => key === k)![1]
    assert.equal(get(head({ method: 'POST', headers: ['host', 'h', 'content-length', '0'] }), 'CONTENT_LENGTH'), '0')
    assert.equal(get(head(), 'CONTENT_LENGTH'), '')
    // a body buffered by the front (was chunked): the real size, as nginx sends it
    assert.equal(get(head({ method: 'POST', bodyLength: 11, headers: ['host', 'h', 'transfer-encoding', 'chunked'] }), 'CONTENT_LENGTH'), '11')
  })

  test('repeated headers joined at the first place (", ", "; " for cookie), or repeated on request', () => {
    const h = head({ headers: ['host', 'h', 'cookie', 'a=1', 'accept', 'x', 'cookie', 'b=2', 'accept', 'y', 'x-one', '1'] })
    const tail = (vars: Array<[string, string]>) => vars.slice(vars.findIndex(([k]) => k === 'HTTP_HOST') + 1)
    assert.deepEqual(tail(packetVars(encodeUwsgiRequest(h))), [['HTTP_COOKIE', 'a=1; b=2'], ['HTTP_ACCEPT', 'x, y'], ['HTTP_X_ONE', '1']])
    assert.deepEqual(tail(packetVars(encodeUwsgiRequest(h, { repeatedHeaders: 'repeat' }))), [
      ['HTTP_COOKIE', 'a=1'], ['HTTP_ACCEPT', 'x'], ['HTTP_COOKIE', 'b=2'], ['HTTP_ACCEPT', 'y'], ['HTTP_X_ONE', '1']
    ])
    assert.deepEqual(h.headers.length, 12, 'the head is not modified')
  })

  test('HTTP_HOST is nginx\'s $host param (client Host skipped); hostParam false sends Host as a plain header', () => {
    const h = head({ authority: 'WWW.Example.Test:8443', headers: ['accept', '*/*', 'host', 'WWW.Example.Test:8443'] })
    const vars = packetVars(encodeUwsgiRequest(h))
    assert.deepEqual(vars.slice(-2), [['HTTP_HOST', 'www.example.test'], ['HTTP_ACCEPT', '*/*']])
    const plain = packetVars(encodeUwsgiRequest(h, { hostParam: false }))
    assert.deepEqual(plain.slice(-3), [['SERVER_NAME', ''], ['HTTP_ACCEPT', '*/*'], ['HTTP_HOST', 'WWW.Example.Test:8443']])
    // no authority: $host falls back to the server name
    const none = packetVars(encodeUwsgiRequest(head({ authority: '', headers: [] }), { serverName: 'fallback' }))
    assert.deepEqual(none.slice(-2), [['SERVER_NAME', 'fallback'], ['HTTP_HOST', 'fallback']])
  })

  test('a requestId travels as HTTP_X_REQUEST_ID after HTTP_HOST, replacing a client X-Request-Id', () => {
    const h = head({ requestId: 'req-42', headers: ['host', 'example.test', 'x-request-id', 'forged', 'accept', '*/*'] })
    const vars = packetVars(encodeUwsgiRequest(h))
    assert.deepEqual(vars.slice(-3), [['HTTP_HOST', 'example.test'], ['HTTP_X_REQUEST_ID', 'req-42'], ['HTTP_ACCEPT', '*/*']])
  })

  test('absolute-form targets become origin-form, as nginx\'s $request_uri', () => {
    const get = (path: string) => Object.fromEntries(packetVars(encodeUwsgiRequest(head({ path }))))
    assert.equal(get('http://Other.Host:99/abs?x').REQUEST_URI, '/abs?x')
    assert.equal(get('http://Other.Host:99/abs?x').QUERY_STRING, 'x')
    assert.equal(get('http://h?q').REQUEST_URI, '/?q')
    assert.equal(get('http://h').REQUEST_URI, '/')
    assert.equal(get('/q?').REQUEST_URI, '/q?')
    assert.equal(get('/q?').QUERY_STRING, '')
  })

  test('header values: latin1 bytes as is; a char above U+00FF as UTF-8; paths as UTF-8', () => {
    const b = encodeUwsgiRequest(head({ path: '/ü?é', headers: ['x-l', 'caf\u00e9', 'x-u', '\u20ac'] }))
    const raw = b.toString('latin1')
    assert.ok(raw.includes('HTTP_X_L\x04\x00caf\xe9'))
    assert.ok(raw.includes('HTTP_X_U\x03\x00\xe2\x82\xac'))
    assert.ok(raw.includes('REQUEST_URI\x06\x00/\xc3\xbc?\xc3\xa9'))
    assert.ok(raw.includes('QUERY_STRING\x02\x00\xc3\xa9'))
  })

  test('header names: a-z upper-cased, "-" → "_", other token chars kept', () => {
    const vars = packetVars(encodeUwsgiRequest(head({ headers: ['x-foo.bar~1', 'v', 'sec-ch-ua', 'w'] })))
    assert.deepEqual(vars.slice(-2), [['HTTP_X_FOO.BAR~1', 'v'], ['HTTP_SEC_CH_UA', 'w']])
    expectCode(() => encodeUwsgiRequest(head({ headers: ['bad name', 'v'] })), 'FERRY_ERR_HEAD_INVALID', 502)
  })

  test('same bytes as an independent builder for a busy head', () => {
    const h = head({
      method: 'PUT',
      path: '/a%20b/./c?d=e',
      scheme: 'https',
      headers: ['host', 'api.test', 'accept', 'application/json', 'content-type', 'application/json', 'content-length', '2'],
      authority: 'api.test',
      bodyLength: 2,
      protocol: 'HTTP/2',
      serverName: 'api'
    })
    const expected = buildPacket([
      ['QUERY_STRING', 'd=e'], ['REQUEST_METHOD', 'PUT'], ['CONTENT_TYPE', 'application/json'], ['CONTENT_LENGTH', '2'],
      ['REQUEST_URI', '/a%20b/./c?d=e'], ['PATH_INFO', '/a b/c'], ['DOCUMENT_ROOT', ''], ['SERVER_PROTOCOL', 'HTTP/2'],
      ['REQUEST_SCHEME', 'https'], ['HTTPS', 'on'], ['REMOTE_ADDR', '10.0.0.9'], ['REMOTE_PORT', '50123'],
      ['SERVER_PORT', '8080'], ['SERVER_NAME', 'api'], ['HTTP_HOST', 'api.test'], ['HTTP_ACCEPT', 'application/json'],
      ['HTTP_CONTENT_TYPE', 'application/json'], ['HTTP_CONTENT_LENGTH', '2']
    ])
    assert.equal(encodeUwsgiRequest(h).toString('hex'), expected.toString('hex'))
  })
})

describe('nginx emulation helpers', () => {
  test('nginxHost: lower-case, no port, no trailing dot', () => {
    assert.equal(nginxHost('Example.Test:8080'), 'example.test')
    assert.equal(nginxHost('H.example.'), 'h.example')
    assert.equal(nginxHost('[::1]:8080'), '[::1]')
    assert.equal(nginxHost('[2001:DB8::1]'), '[2001:db8::1]')
    assert.equal(nginxHost('127.0.0.1:80'), '127.0.0.1')
    assert.equal(nginxHost('plain'), 'plain')
  })

  test('nginxPathInfo: the cases observed from nginx 1.22.1', () => {
    const s = (p: string) => {
      const r = nginxPathInfo(p)
      return typeof r === 'string' ? r : r.toString('utf8')
    }
    assert.equal(nginxPathInfo('/plain/path'), '/plain/path', 'untouched paths come back as the same string')
    assert.equal(s('/a//b/./c/../d%20e/%C3%A9t%c3%A9%2Fx'), '/a/b/d e/été/x')
    assert.equal(s('/a/%2e%2e/x'), '/x')
    assert.equal(s('/a/b/..'), '/a/')
    assert.equal(s('/a/b/.'), '/a/b/')
    assert.equal(s('/a//'), '/a/')
    assert.equal(s('//x'), '/x')
    assert.equal(s('/.well-known/x'), '/.well-known/x')
    assert.equal(s('/a/...b/..c'), '/a/...b/..c')
    assert.deepEqual(nginxPathInfo('/a%ff%fe'), Buffer.from([0x2f, 0x61, 0xff, 0xfe]), 'undecodable bytes stay bytes')
    // where nginx answers 400 instead, ferry clamps at "/" and keeps bad escapes
    assert.equal(s('/../x'), '/x')
    assert.equal(s('/%2e%2e/x'), '/x')
    assert.equal(s('/a%zz'), '/a%zz')
    assert.equal(s('/a%00b'), '/a%00b')
    assert.equal(s('/a%2'), '/a%2')
  })
})

describe('encodeUwsgiRequest errors', () => {
  test('a vars block past 65535 bytes throws FERRY_ERR_UWSGI_ENCODE_TOO_LARGE (no 16-bit wrap)', () => {
    const fixed = encodeUwsgiRequest(head({ headers: ['x', ''] })).length - 4
    const exact = head({ headers: ['x', 'v'.repeat(UWSGI_MAX_VARS - fixed)] })
    const b = encodeUwsgiRequest(exact)
    assert.equal(b.length, 4 + UWSGI_MAX_VARS)
    assert.equal(b.readUInt16LE(1), 0xffff)
    expectCode(() => encodeUwsgiRequest(head({ headers: ['x', 'v'.repeat(UWSGI_MAX_VARS - fixed + 1)] })), 'FERRY_ERR_UWSGI_ENCODE_TOO_LARGE', 431)
    expectCode(() => encodeUwsgiRequest(head({ headers: ['x', 'v'.repeat(70000)] })), 'FERRY_ERR_UWSGI_ENCODE_TOO_LARGE', 431)
    expectCode(() => encodeUwsgiRequest(head({ path: `/${'p'.repeat(40000)}` })), 'FERRY_ERR_UWSGI_ENCODE_TOO_LARGE', 431)
  })

  test('a streamed body (bodyLength -1) throws FERRY_ERR_UWSGI_LENGTH_REQUIRED', () => {
    expectCode(() => encodeUwsgiRequest(head({ method: 'POST', bodyLength: -1 })), 'FERRY_ERR_UWSGI_LENGTH_REQUIRED', 411)
  })
})
