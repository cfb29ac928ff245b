/**
 * `ferry app --listen tls://…` (issue 6): the listener's side of TLS between tiers. Raw
 * clients (tls.connect / net.connect) speak uwsgi and the native preface to a real app
 * process: a good certificate is served, a plain-text client is closed and logged while a
 * TLS connection on the same listener goes on, a verified client certificate stands in for
 * the uwsgi address allow-list, the start-up errors, and the non-loopback warning.
 * Certificates are made at test time with the openssl CLI (skipped without it).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { before, describe, test } from 'node:test'
import { emptyRequestHead, encodeUwsgiRequest, parseAddress, PREFACE } from '@ferry/protocol'
import { type CertFiles, certsOrSkip } from '../helpers/certs.ts'
import { type FerryProcess, fileScope } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const scope = fileScope('ferry-tlsl-')
const start = (args: string[]): Promise<FerryProcess> => scope.start(args)
const { certs, skip } = certsOrSkip(scope.dir, 'tls listener tests')
let c: CertFiles

before(() => {
  if (certs !== null) c = certs
})


function tlsArgs (clientCa = true): string[] {
  return ['--tls-cert', c.serverCert, '--tls-key', c.serverKey, ...(clientCa ? ['--tls-client-ca', c.ca] : [])]
}

/** A verified TLS connection to a tls:// address (our CA; a client certificate when given). */
function connectTls (address: string, client: { cert: string, key: string } | null): Promise<tls.TLSSocket> {
  const a = parseAddress(address)
  if (a.kind !== 'tcp') throw new Error('tcp only')
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: a.host,
      port: a.port,
      ca: readFileSync(c.ca),
      cert: client === null ? undefined : readFileSync(client.cert),
      key: client === null ? undefined : readFileSync(client.key)
    }, () => resolve(s))
    s.once('error', reject)
  })
}

/** Send one uwsgi request for `path` and read until the node closes. */
function uwsgiOver (socket: net.Socket, path: string): Promise<{ bytes: Buffer, error: string | null }> {
  return new Promise((resolve) => {
    const parts: Buffer[] = []
    let error: string | null = null
    socket.on('data', (d: Buffer) => parts.push(d))
    socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
    socket.on('close', () => resolve({ bytes: Buffer.concat(parts), error }))
    socket.write(encodeUwsgiRequest({ ...emptyRequestHead(), path, authority: 'x' }))
  })
}

describe('a tls:// listener', { skip }, () => {
  let app: FerryProcess
  before(async () => {
    // uwsgi-allow names an address no test client has: only a verified certificate lets uwsgi in
    app = await start(['app', HANDLER, '--listen', 'tls://127.0.0.1:0', '--threads', '1', '--uwsgi-allow', '10.9.8.7', ...tlsArgs()])
  })

  test('uwsgi over TLS with a client certificate from the CA is served (the certificate stands in for --uwsgi-allow)', async () => {
    const s = await connectTls(app.addresses[0]!, { cert: c.clientCert, key: c.clientKey })
    const r = await uwsgiOver(s, '/text')
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nGET $/)
    assert.equal(app.logs.filter((l) => l.code === 'FERRY_ERR_APP_UWSGI_REFUSED').length, 0)
  })

  test('a plain-text client is closed and logged, while a TLS connection on the same listener keeps working', async () => {
    const good = await connectTls(app.addresses[0]!, { cert: c.clientCert, key: c.clientKey })
    const a = parseAddress(app.addresses[0]!)
    assert.equal(a.kind, 'tcp')
    const plain = net.connect(a.kind === 'tcp' ? a.port : 0, '127.0.0.1')
    const answer = await new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = []
      plain.on('data', (d: Buffer) => parts.push(d))
      plain.on('error', () => {})
      plain.on('close', () => resolve(Buffer.concat(parts)))
      plain.write(Buffer.concat([PREFACE, Buffer.alloc(64, 0x41)]))
    })
    // the TLS alert the handshake sends back is all a plain client gets: no HTTP, no HELLO
    assert.ok(!answer.includes(PREFACE) && !answer.toString('latin1').includes('HTTP/'), answer.toString('hex'))
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE')
    assert.match(String(line.reason), /^ERR_SSL_/)
    assert.equal(line.remoteAddress, '127.0.0.1')
    const r = await uwsgiOver(good, '/text')
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1\.1 200 /)
  })

  test('without a client certificate: closed right after the handshake, nothing served, logged', async () => {
    const before = app.logs.length
    const s = await connectTls(app.addresses[0]!, null)
    const r = await uwsgiOver(s, '/text')
    assert.equal(r.bytes.length, 0)
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && app.logs.indexOf(l) >= before)
    assert.equal(line.reason, 'PEER_DID_NOT_RETURN_A_CERTIFICATE')
  })

  test('a certificate from another CA: closed, logged with the verification error', async () => {
    const before = app.logs.length
    const s = await connectTls(app.addresses[0]!, { cert: c.otherClientCert, key: c.otherClientKey })
    const r = await uwsgiOver(s, '/text')
    assert.equal(r.bytes.length, 0)
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && app.logs.indexOf(l) >= before)
    assert.equal(line.reason, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  })
})

describe('a tls:// listener without --tls-client-ca', { skip }, () => {
  test('serves any TLS client (encrypted, not authenticated); uwsgi still follows --uwsgi-allow', async () => {
    const app = await start(['app', HANDLER, '--listen', 'tls://127.0.0.1:0', '--threads', '1', ...tlsArgs(false)])
    const s = await connectTls(app.addresses[0]!, null)
    const r = await uwsgiOver(s, '/text')
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1\.1 200 /)
    const refused = await start(['app', HANDLER, '--listen', 'tls://127.0.0.1:0', '--threads', '1', '--uwsgi-allow', '10.9.8.7', ...tlsArgs(false)])
    const s2 = await connectTls(refused.addresses[0]!, null)
    assert.equal((await uwsgiOver(s2, '/text')).bytes.length, 0)
    await refused.waitForLog((l) => l.code === 'FERRY_ERR_APP_UWSGI_REFUSED')
  })
})

describe('start-up errors (exit 1, FERRY_ERR_APP_OPTIONS)', { skip }, () => {
  function appFails (args: string[], message: RegExp): void {
    const r = spawnSync(process.execPath, [BIN, 'app', HANDLER, '--threads', '1', ...args], { encoding: 'utf8', timeout: 20000 })
    assert.equal(r.status, 1, r.stdout + r.stderr)
    const fatal = r.stdout.split('\n').filter((l) => l.includes('"level":60'))
    assert.equal(fatal.length, 1, r.stdout)
    const line = JSON.parse(fatal[0]!) as { code: string, msg: string }
    assert.equal(line.code, 'FERRY_ERR_APP_OPTIONS')
    assert.match(line.msg, message)
  }

  test('--help lists the TLS options and the tls:// address form', () => {
    const help = spawnSync(process.execPath, [BIN, 'app', '--help'], { encoding: 'utf8' }).stdout
    for (const s of ['tls://', '--tls-cert', '--tls-key', '--tls-client-ca', 'FERRY_ERR_APP_TLS_HANDSHAKE']) assert.ok(help.includes(s), s)
  })

  test('a tls:// listener without --tls-cert/--tls-key', () => {
    appFails(['--listen', 'tls://127.0.0.1:0'], /needs --tls-cert <file> and --tls-key/)
    appFails(['--listen', 'tls://127.0.0.1:0', '--tls-cert', c.serverCert], /needs --tls-cert <file> and --tls-key/)
  })

  test('TLS files with no tls:// listener', () => {
    appFails(['--listen', '127.0.0.1:0', '--tls-cert', c.serverCert, '--tls-key', c.serverKey], /--tls-cert, --tls-key given but no --listen address is tls:\/\//)
    appFails(['--listen', '127.0.0.1:0', '--tls-client-ca', c.ca], /--tls-client-ca given/)
  })

  test('an unreadable file, a key that does not match, a tls:// --stats', () => {
    appFails(['--listen', 'tls://127.0.0.1:0', '--tls-cert', `${scope.dir}/missing.pem`, '--tls-key', c.serverKey], /--tls-cert .*missing\.pem/)
    appFails(['--listen', 'tls://127.0.0.1:0', '--tls-cert', c.serverCert, '--tls-key', c.clientKey], /not usable/)
    appFails(['--listen', 'tls://127.0.0.1:0', ...tlsArgs(), '--stats', 'tls://127.0.0.1:0'], /--stats serves plain HTTP/)
  })
})

describe('the non-loopback warning (FERRY_ERR_APP_UNAUTHENTICATED)', { skip }, () => {
  // Each process binds 0.0.0.0 only for as long as it takes to read its start-up lines.
  async function warnings (args: string[]): Promise<string[]> {
    const app = await start(['app', HANDLER, '--threads', '1', ...args])
    await app.stop()
    return app.logs.filter((l) => l.code === 'FERRY_ERR_APP_UNAUTHENTICATED').map((l) => String(l.msg))
  }

  test('tls:// with --tls-client-ca is authenticated: no warning', async () => {
    assert.deepEqual(await warnings(['--listen', 'tls://0.0.0.0:0', ...tlsArgs()]), [])
  })

  test('tls:// without --tls-client-ca or --auth: encrypted but unauthenticated, warned', async () => {
    const w = await warnings(['--listen', 'tls://0.0.0.0:0', ...tlsArgs(false)])
    assert.equal(w.length, 1)
    assert.match(w[0]!, /encrypted, but any peer that reaches it can send requests/)
  })

  test('plain tcp without --auth is warned as before; tls:// on loopback is not', async () => {
    const w = await warnings(['--listen', 'tcp://0.0.0.0:0', '--listen', 'tls://127.0.0.1:0', ...tlsArgs(false)])
    assert.equal(w.length, 1)
    assert.match(w[0]!, /without --auth: any peer/)
  })
})
