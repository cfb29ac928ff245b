/**
 * `ferry front` re-reads its own HTTPS certificate (--tls-cert/--tls-key, or `tls` in
 * --config) on SIGHUP, as nginx does: new client connections get the new certificate, a
 * keep-alive connection or h2 session opened before goes on, and a client that trusts only
 * the old CA is refused from then on. Files that do not load leave the running certificate
 * in place (FERRY_ERR_FRONT_TLS_RELOAD). HTTP/1.1 and --http2 (h2 with HTTP/1.1 fallback);
 * flags win over the config file at a reload as at start. A real `ferry app` node answers
 * behind the front; clients are node:https / node:http2 with their own CA. Certificates are
 * made at test time with the openssl CLI (skipped without it).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { type ClientHttp2Session, connect as h2connect } from 'node:http2'
import { Agent, request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import { before, describe, test } from 'node:test'
import { type CertFiles, certsOrSkip } from '../helpers/certs.ts'
import { type FerryProcess, type LogLine, fileScope, hup } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const scope = fileScope('ferry-httpsr-')
const { certs, skip } = certsOrSkip(scope.dir, 'front HTTPS reload tests')
const c = certs as CertFiles

const fingerprint = (file: string): string => new X509Certificate(readFileSync(file)).fingerprint256

let folders = 0
function folder (): string {
  const dir = join(scope.dir, `f${folders++}`)
  mkdirSync(dir)
  return dir
}

/** Copies of the first CA's server certificate and key in a folder of their own. */
function certCopies (): { dir: string, cert: string, key: string } {
  const dir = folder()
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  copyFileSync(c.serverCert, cert)
  copyFileSync(c.serverKey, key)
  return { dir, cert, key }
}

const reloaded = (l: LogLine): boolean => l.msg === 'HTTPS certificate reloaded: new client connections get it'
const notReloaded = (l: LogLine): boolean => l.code === 'FERRY_ERR_FRONT_TLS_RELOAD'
const outcome = (l: LogLine): boolean => reloaded(l) || notReloaded(l)

interface Answer {
  status: number
  body: string
  httpVersion: string
  /** SHA-256 fingerprint of the certificate the front presented. */
  cert: string
  socket: TLSSocket
  reused: boolean
}

/**
 * The certificate a connection was made with, read once per connection: on the client side
 * Node has it from the handshake, but not any more once a TLS 1.3 session ticket arrived
 * (a keep-alive socket's second request sees undefined).
 */
const seen = new WeakMap<object, string>()
function peerCert (socket: TLSSocket, key: object = socket): string {
  let cert = seen.get(key)
  if (cert === undefined) {
    cert = socket.getPeerX509Certificate()!.fingerprint256
    seen.set(key, cert)
  }
  return cert
}

/** GET over HTTPS trusting only `ca`; a fresh connection unless a keep-alive `agent` is given. */
function get (origin: string, ca: string, agent?: Agent, path = '/text'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${origin}${path}`, { ca: readFileSync(ca), agent: agent ?? false }, (res) => {
      const socket = res.socket as TLSSocket // detached from the response by its end
      const cert = peerCert(socket)
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, body, httpVersion: res.httpVersion, cert, socket, reused: req.reusedSocket }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The code a client trusting only `ca` is refused with. */
async function refused (origin: string, ca: string): Promise<string> {
  const err = await get(origin, ca).then(() => null, (e: NodeJS.ErrnoException) => e)
  assert.ok(err !== null, 'the connection should have failed verification')
  return err.code!
}

/** An h2 session trusting only `ca`, once its TLS handshake is done. */
function session (origin: string, ca: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = h2connect(origin, { ca: readFileSync(ca) })
    s.once('error', reject)
    s.once('connect', () => {
      peerCert(s.socket as TLSSocket, s)
      s.off('error', reject)
      s.on('error', () => {}) // closed at the end of the test
      resolve(s)
    })
  })
}

async function h2get (s: ClientHttp2Session, path = '/text'): Promise<{ status: number, body: string, cert: string }> {
  return await new Promise((resolve, reject) => {
    const req = s.request({ ':path': path })
    let status = 0
    let body = ''
    req.on('response', (h) => { status = Number(h[':status']) })
    req.setEncoding('utf8')
    req.on('data', (d: string) => { body += d })
    req.on('end', () => resolve({ status, body, cert: peerCert(s.socket as TLSSocket, s) }))
    req.on('error', reject)
    req.end()
  })
}

const TLS_REFUSED = 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'

describe('SIGHUP re-reads the front\'s HTTPS certificate', { skip }, () => {
  let node: FerryProcess
  let A: string
  let B: string
  before(async () => {
    node = await scope.start(['app', HANDLER, '--listen', `unix:${join(scope.dir, 'app.sock')}`, '--threads', '1'])
    A = fingerprint(c.serverCert)
    B = fingerprint(c.otherServerCert)
  })
  const front = async (args: string[]): Promise<{ f: FerryProcess, origin: string }> => {
    const f = await scope.start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--upstream', node.addresses[0]!, ...args])
    return { f, origin: f.addresses[0]!.replace('tcp://', 'https://') }
  }

  test('HTTP/1.1: a certificate from another CA replaces the files; new connections get it, a keep-alive connection from before goes on, the old CA no longer verifies', async (t) => {
    const files = certCopies()
    const { f, origin } = await front(['--tls-cert', files.cert, '--tls-key', files.key])
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    t.after(() => agent.destroy())
    const first = await get(origin, c.ca, agent)
    assert.equal(first.status, 200, first.body)
    assert.equal(first.body, 'GET ')
    assert.equal(first.cert, A)
    assert.equal(await refused(origin, c.otherCa), TLS_REFUSED)

    copyFileSync(c.otherServerCert, files.cert)
    copyFileSync(c.otherServerKey, files.key)
    const line = await hup(f, outcome)
    assert.equal(line.msg, 'HTTPS certificate reloaded: new client connections get it')
    assert.equal(line.level, 30)
    assert.equal(line.cert, files.cert)
    assert.equal(line.key, files.key)
    // no config file: the warning says the certificate is re-read all the same
    assert.ok(f.logs.some((l) => l.msg === 'SIGHUP: no --config file to re-read: upstreams unchanged (the HTTPS certificate files are re-read)'))

    const fresh = await get(origin, c.otherCa)
    assert.equal(fresh.status, 200, fresh.body)
    assert.equal(fresh.body, 'GET ')
    assert.equal(fresh.cert, B)
    assert.equal(fresh.reused, false)

    // the connection opened before the reload: the same socket, the old certificate, served
    const again = await get(origin, c.ca, agent)
    assert.equal(again.reused, true)
    assert.equal(again.socket, first.socket)
    assert.equal(again.status, 200, again.body)
    assert.equal(again.body, 'GET ')
    assert.equal(again.cert, A)

    assert.equal(await refused(origin, c.ca), TLS_REFUSED)
    assert.equal(f.logs.filter(notReloaded).length, 0)
  })

  test('files that do not load: FERRY_ERR_FRONT_TLS_RELOAD, the running certificate stays; good files then reload', async () => {
    const files = certCopies()
    const { f, origin } = await front(['--tls-cert', files.cert, '--tls-key', files.key])
    assert.equal((await get(origin, c.ca)).cert, A)

    // garbage PEM
    writeFileSync(files.cert, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n')
    const bad = await hup(f, outcome)
    assert.equal(bad.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.equal(bad.level, 50)
    assert.equal(bad.msg, 'SIGHUP: HTTPS certificate not reloaded: keeping the running one')
    assert.match(String(bad.err), /HTTPS certificate or key not usable: /)
    assert.equal(bad.cert, files.cert)
    assert.equal(bad.key, files.key)
    const served = await get(origin, c.ca)
    assert.equal(served.status, 200, served.body)
    assert.equal(served.body, 'GET ')
    assert.equal(served.cert, A)

    // a valid certificate with the other CA's key: they do not match
    copyFileSync(c.otherServerCert, files.cert)
    const mismatch = await hup(f, outcome)
    assert.equal(mismatch.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.match(String(mismatch.err), /HTTPS certificate or key not usable: .*key values mismatch/)
    assert.equal((await get(origin, c.ca)).cert, A)

    // a file that is gone
    copyFileSync(c.otherServerKey, files.key)
    rmSync(files.cert)
    const gone = await hup(f, outcome)
    assert.equal(gone.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.match(String(gone.err), /--tls-cert .*cert\.pem: ENOENT/)
    assert.equal((await get(origin, c.ca)).cert, A)
    assert.equal(await refused(origin, c.otherCa), TLS_REFUSED)
    assert.equal(f.logs.filter(reloaded).length, 0)

    // fixed: the next SIGHUP takes the new pair
    copyFileSync(c.otherServerCert, files.cert)
    assert.equal((await hup(f, outcome)).msg, 'HTTPS certificate reloaded: new client connections get it')
    const now = await get(origin, c.otherCa)
    assert.equal(now.status, 200, now.body)
    assert.equal(now.cert, B)
    assert.equal(f.logs.filter(notReloaded).length, 3)
  })

  test('--http2 with a --config file that names other files: new h2 and HTTP/1.1 connections get them, an h2 session from before goes on', async (t) => {
    const files = certCopies()
    copyFileSync(c.otherServerCert, join(files.dir, 'next.pem'))
    copyFileSync(c.otherServerKey, join(files.dir, 'next.key'))
    const config = join(files.dir, 'front.json')
    const write = (cert: string, key: string): void => writeFileSync(config, JSON.stringify({ upstreams: [node.addresses[0]], tls: { cert, key } }))
    write('cert.pem', 'key.pem')
    const { f, origin } = await front(['--http2', '--config', config])
    const old = await session(origin, c.ca)
    t.after(() => old.close())
    assert.equal(old.alpnProtocol, 'h2')
    const first = await h2get(old)
    assert.equal(first.status, 200, first.body)
    assert.equal(first.body, 'GET ')
    assert.equal(first.cert, A)

    write('next.pem', 'next.key')
    const from = f.logs.length
    const line = await hup(f, outcome)
    assert.equal(line.msg, 'HTTPS certificate reloaded: new client connections get it')
    assert.equal(line.cert, join(files.dir, 'next.pem'))
    assert.equal(line.key, join(files.dir, 'next.key'))
    await f.waitForLog((l) => f.logs.indexOf(l) >= from && l.msg === 'reloaded upstreams')

    const fresh = await session(origin, c.otherCa)
    t.after(() => fresh.close())
    assert.equal(fresh.alpnProtocol, 'h2')
    const r = await h2get(fresh)
    assert.equal(r.status, 200, r.body)
    assert.equal(r.body, 'GET ')
    assert.equal(r.cert, B)
    // HTTP/1.1 fallback (ALPN) on the new context too
    const h1 = await get(origin, c.otherCa)
    assert.equal(h1.status, 200, h1.body)
    assert.equal(h1.httpVersion, '1.1')
    assert.equal(h1.cert, B)

    // the session opened before the reload still answers, with the old certificate
    const kept = await h2get(old)
    assert.equal(kept.status, 200, kept.body)
    assert.equal(kept.body, 'GET ')
    assert.equal(kept.cert, A)
    assert.equal(await refused(origin, c.ca), TLS_REFUSED)
  })

  test('flags win over the config file at a reload as at start', async () => {
    const files = certCopies()
    const config = join(files.dir, 'front.json')
    const write = (name: string, cert: string, key: string): void => {
      copyFileSync(cert, join(files.dir, `${name}.pem`))
      copyFileSync(key, join(files.dir, `${name}.key`))
      writeFileSync(config, JSON.stringify({ upstreams: [node.addresses[0]], tls: { cert: `${name}.pem`, key: `${name}.key` } }))
    }
    write('cfg-b', c.otherServerCert, c.otherServerKey)
    const { f, origin } = await front(['--config', config, '--tls-cert', files.cert, '--tls-key', files.key])
    assert.equal((await get(origin, c.ca)).cert, A) // the flags' files, not the config's
    // the flags' files now hold B, the config names A's: the flags' files are re-read
    copyFileSync(c.otherServerCert, files.cert)
    copyFileSync(c.otherServerKey, files.key)
    write('cfg-a', c.serverCert, c.serverKey)
    const line = await hup(f, outcome)
    assert.equal(line.msg, 'HTTPS certificate reloaded: new client connections get it')
    assert.equal(line.cert, files.cert)
    assert.equal(line.key, files.key)
    const r = await get(origin, c.otherCa)
    assert.equal(r.status, 200, r.body)
    assert.equal(r.cert, B)
  })

  test('HTTPS cannot be switched on or off by a reload: the config that tries is refused with FERRY_ERR_FRONT_TLS_RELOAD', async () => {
    const files = certCopies()
    // started plain, the config then names a certificate
    const plainConfig = join(files.dir, 'plain.json')
    writeFileSync(plainConfig, JSON.stringify({ upstreams: [node.addresses[0]] }))
    const plain = await scope.start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--config', plainConfig])
    writeFileSync(plainConfig, JSON.stringify({ upstreams: [node.addresses[0]], tls: { cert: 'cert.pem', key: 'key.pem' } }))
    const on = await hup(plain, outcome)
    assert.equal(on.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.equal(on.level, 50)
    assert.equal(on.msg, 'SIGHUP: HTTPS certificate named, but this front was started without HTTPS: it takes effect at a restart')
    assert.equal(on.cert, files.cert)
    const res = await fetch(`${plain.addresses[0]!.replace('tcp://', 'http://')}/text`)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'GET ')

    // started with HTTPS, the config then names none
    const httpsConfig = join(files.dir, 'https.json')
    writeFileSync(httpsConfig, JSON.stringify({ upstreams: [node.addresses[0]], tls: { cert: 'cert.pem', key: 'key.pem' } }))
    const { f, origin } = await front(['--config', httpsConfig])
    writeFileSync(httpsConfig, JSON.stringify({ upstreams: [node.addresses[0]] }))
    const off = await hup(f, outcome)
    assert.equal(off.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.equal(off.msg, 'SIGHUP: no HTTPS certificate named any more, but HTTPS cannot be turned off without a restart: keeping the running certificate')
    assert.equal(off.cert, files.cert)
    const r = await get(origin, c.ca)
    assert.equal(r.status, 200, r.body)
    assert.equal(r.cert, A)
  })

  test('--help says SIGHUP re-reads the HTTPS certificate', () => {
    const help = spawnSync(process.execPath, [BIN, 'front', '--help'], { encoding: 'utf8' }).stdout
    assert.match(help, /--tls-key <file>[^\n]*\n[\s\S]*SIGHUP re-reads both/)
  })
})
