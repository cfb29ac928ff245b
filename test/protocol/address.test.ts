/**
 * Address parsing shared by `ferry app --listen`, `ferry front --listen` and upstream nodes.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FerryError, formatAddress, formatNodeAddress, parseAddress, parseNodeAddress } from '@ferry/protocol'

function invalid (input: string): void {
  assert.throws(() => parseAddress(input), (err: unknown) => {
    assert.ok(err instanceof FerryError, `${JSON.stringify(input)}: ${String(err)}`)
    assert.equal(err.code, 'FERRY_ERR_ADDRESS_INVALID')
    assert.equal(err.statusCode, 500)
    assert.ok(err.message.includes(JSON.stringify(input)), 'the message quotes the input')
    return true
  }, JSON.stringify(input))
}

describe('parseAddress', () => {
  test('unix sockets', () => {
    assert.deepEqual(parseAddress('unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' })
    assert.deepEqual(parseAddress('unix:///run/app.sock'), { kind: 'unix', path: '/run/app.sock' })
    assert.deepEqual(parseAddress('unix:relative/app.sock'), { kind: 'unix', path: 'relative/app.sock' })
    assert.deepEqual(parseAddress('  unix:/tmp/a b.sock  '), { kind: 'unix', path: '/tmp/a b.sock' }, 'trimmed; spaces inside a path kept')
  })

  test('tcp with and without a scheme', () => {
    assert.deepEqual(parseAddress('tcp://127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 })
    assert.deepEqual(parseAddress('tcp:127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 })
    assert.deepEqual(parseAddress('tcp://app-1.internal:9000/'), { kind: 'tcp', host: 'app-1.internal', port: 9000 })
    assert.deepEqual(parseAddress('localhost:3000'), { kind: 'tcp', host: 'localhost', port: 3000 })
    assert.deepEqual(parseAddress('my_service:80'), { kind: 'tcp', host: 'my_service', port: 80 })
    assert.deepEqual(parseAddress('10.1.2.3:0'), { kind: 'tcp', host: '10.1.2.3', port: 0 })
    assert.deepEqual(parseAddress('h:65535'), { kind: 'tcp', host: 'h', port: 65535 })
  })

  test(':port and *:port bind every IPv4 address', () => {
    assert.deepEqual(parseAddress(':8000'), { kind: 'tcp', host: '0.0.0.0', port: 8000 })
    assert.deepEqual(parseAddress('*:8000'), { kind: 'tcp', host: '0.0.0.0', port: 8000 })
    assert.deepEqual(parseAddress('tcp://:8000'), { kind: 'tcp', host: '0.0.0.0', port: 8000 })
  })

  test('IPv6 in brackets', () => {
    assert.deepEqual(parseAddress('[::1]:8080'), { kind: 'tcp', host: '::1', port: 8080 })
    assert.deepEqual(parseAddress('tcp://[::]:80'), { kind: 'tcp', host: '::', port: 80 })
    assert.deepEqual(parseAddress('[2001:db8::1]:443'), { kind: 'tcp', host: '2001:db8::1', port: 443 })
    assert.deepEqual(parseAddress('[fe80::1%eth0]:9000'), { kind: 'tcp', host: 'fe80::1%eth0', port: 9000 })
  })

  test('tls:// is tcp with tls: true (IPv4, names, IPv6 in brackets); other forms carry no tls key', () => {
    assert.deepEqual(parseAddress('tls://127.0.0.1:8443'), { kind: 'tcp', host: '127.0.0.1', port: 8443, tls: true })
    assert.deepEqual(parseAddress('tls://app-1.internal:9000/'), { kind: 'tcp', host: 'app-1.internal', port: 9000, tls: true })
    assert.deepEqual(parseAddress('tls://[::1]:8443'), { kind: 'tcp', host: '::1', port: 8443, tls: true })
    assert.deepEqual(parseAddress('tls://:8443'), { kind: 'tcp', host: '0.0.0.0', port: 8443, tls: true })
    assert.equal('tls' in parseAddress('tcp://127.0.0.1:1'), false)
    assert.equal('tls' in parseAddress('127.0.0.1:1'), false)
    for (const input of ['tls://', 'tls://host', 'tls://[::1]', 'tls:host:1', 'tls://host:65536']) invalid(input)
  })

  test('bad inputs → FERRY_ERR_ADDRESS_INVALID', () => {
    for (const input of [
      '', '   ', 'unix:', 'unix://', 'localhost', 'tcp://', 'tcp://host', 'host:', 'host:abc', 'host:-1', 'host:65536',
      'host:123456', 'host: 80', 'host:80/path', '[::1]8080', '[::1', '[::1]:', '[]:80', '[host]:80', '::1:8080',
      'http://host:80', 'a b:80', 'host/x:80', 'ftp://h:21'
    ]) {
      invalid(input)
    }
  })
})

describe('parseNodeAddress', () => {
  test('native by default; uwsgi+ and native+ prefixes', () => {
    assert.deepEqual(parseNodeAddress('unix:/run/a.sock'), { codec: 'native', address: { kind: 'unix', path: '/run/a.sock' } })
    assert.deepEqual(parseNodeAddress('native+tcp://h:1'), { codec: 'native', address: { kind: 'tcp', host: 'h', port: 1 } })
    assert.deepEqual(parseNodeAddress('uwsgi+unix:/run/u.sock'), { codec: 'uwsgi', address: { kind: 'unix', path: '/run/u.sock' } })
    assert.deepEqual(parseNodeAddress('uwsgi+tcp://127.0.0.1:3031'), { codec: 'uwsgi', address: { kind: 'tcp', host: '127.0.0.1', port: 3031 } })
    assert.deepEqual(parseNodeAddress('uwsgi+127.0.0.1:3031'), { codec: 'uwsgi', address: { kind: 'tcp', host: '127.0.0.1', port: 3031 } })
    assert.deepEqual(parseNodeAddress('uwsgi+[::1]:3031'), { codec: 'uwsgi', address: { kind: 'tcp', host: '::1', port: 3031 } })
  })

  test('tls:// nodes: native, and uwsgi+tls:// (nginx suwsgi://)', () => {
    assert.deepEqual(parseNodeAddress('tls://10.0.0.5:8001'), { codec: 'native', address: { kind: 'tcp', host: '10.0.0.5', port: 8001, tls: true } })
    assert.deepEqual(parseNodeAddress('native+tls://h:1'), { codec: 'native', address: { kind: 'tcp', host: 'h', port: 1, tls: true } })
    assert.deepEqual(parseNodeAddress('uwsgi+tls://[::1]:3031'), { codec: 'uwsgi', address: { kind: 'tcp', host: '::1', port: 3031, tls: true } })
    assert.equal(formatNodeAddress(parseNodeAddress('uwsgi+tls://h:3031')), 'uwsgi+tls://h:3031')
  })

  test('bad node addresses → FERRY_ERR_ADDRESS_INVALID', () => {
    for (const input of ['uwsgi+', 'uwsgi+unix:', 'native+host', 'fastcgi+h:1', 'uwsgi:h:1']) {
      assert.throws(() => parseNodeAddress(input), { code: 'FERRY_ERR_ADDRESS_INVALID' }, input)
    }
  })
})

describe('formatAddress', () => {
  test('canonical forms, and parse(format(a)) = a', () => {
    const cases: [string, string][] = [
      ['unix:/run/a.sock', 'unix:/run/a.sock'],
      ['127.0.0.1:80', 'tcp://127.0.0.1:80'],
      [':80', 'tcp://0.0.0.0:80'],
      ['[::1]:80', 'tcp://[::1]:80'],
      ['tcp://[fe80::1%eth0]:1', 'tcp://[fe80::1%eth0]:1'],
      ['tls://127.0.0.1:443', 'tls://127.0.0.1:443'],
      ['tls://[::1]:443', 'tls://[::1]:443'],
      ['tls://:443', 'tls://0.0.0.0:443']
    ]
    for (const [input, canonical] of cases) {
      const a = parseAddress(input)
      assert.equal(formatAddress(a), canonical)
      assert.deepEqual(parseAddress(formatAddress(a)), a)
    }
    assert.equal(formatNodeAddress(parseNodeAddress('uwsgi+:3031')), 'uwsgi+tcp://0.0.0.0:3031')
    assert.equal(formatNodeAddress(parseNodeAddress('native+unix:/x')), 'unix:/x')
  })
})
