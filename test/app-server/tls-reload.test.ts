/**
 * `ferry app --listen tls://…` re-reads --tls-cert/--tls-key/--tls-client-ca on SIGHUP
 * (issue 6, certificate rotation as nginx does it): new connections get the new certificate
 * and are checked against the new client CA, connections opened before go on untouched, a
 * session from before is not resumed past a client-CA change, and files that do not load
 * leave the running certificates in place (FERRY_ERR_APP_TLS_RELOAD) while the handler
 * reload still happens. Each test runs its own node on copies of the PEM files it overwrites.
 * Certificates are made at test time with the openssl CLI (skipped without it).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'
import { describe, test } from 'node:test'
import { encodeUwsgiRequest, emptyRequestHead, parseAddress, Session } from '@ferry/protocol'
import { type CertFiles, certsOrSkip } from '../helpers/certs.ts'
import { type FerryProcess, type LogLine, fileScope, startFerry, hup } from '../helpers/proc.ts'
import { head, request } from './client.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const scope = fileScope('ferry-tlsr-')
const { certs, skip } = certsOrSkip(scope.dir, 'TLS reload tests')
const c = certs as CertFiles

const serial = (file: string): string => new X509Certificate(readFileSync(file)).serialNumber

/** A node on tls:// whose cert, key and client CA are copies in a folder of its own. */
interface Node {
  app: FerryProcess
  cert: string
  key: string
  clientCa: string
}

let folders = 0
async function startNode (): Promise<Node> {
  const dir = join(scope.dir, `node${folders++}`)
  mkdirSync(dir)
  const n = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), clientCa: join(dir, 'client-ca.pem') }
  copyFileSync(c.serverCert, n.cert)
  copyFileSync(c.serverKey, n.key)
  copyFileSync(c.ca, n.clientCa)
  const app = await startFerry(['app', HANDLER, '--listen', 'tls://127.0.0.1:0', '--threads', '1', '--tls-cert', n.cert, '--tls-key', n.key, '--tls-client-ca', n.clientCa])
  scope.procs.push(app)
  return { app, ...n }
}

const reloaded = (l: LogLine): boolean => l.msg === 'TLS certificates reloaded: new connections use them'
const handlerReloaded = (l: LogLine): boolean => typeof l.msg === 'string' && l.msg.startsWith('reloaded: new requests go to the new pool')

/** The first TLS session each connection received (listened for from the start). */
const tickets = new WeakMap<tls.TLSSocket, Promise<Buffer>>()

/** A TLS connection trusting both CAs (so either server certificate verifies). */
function connectTls (node: Node, client: { cert: string, key: string }, session?: Buffer): Promise<tls.TLSSocket> {
  const a = parseAddress(node.app.addresses[0]!)
  if (a.kind !== 'tcp') throw new Error('tcp only')
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: a.host,
      port: a.port,
      ca: [readFileSync(c.ca), readFileSync(c.otherCa)],
      cert: readFileSync(client.cert),
      key: readFileSync(client.key),
      session
    }, () => resolve(s))
    tickets.set(s, new Promise((resolve) => s.once('session', resolve)))
    s.once('error', reject)
  })
}

/** A native session (the protocol a front speaks) over a verified TLS connection. */
async function nativeSession (node: Node): Promise<{ socket: tls.TLSSocket, session: Session }> {
  const socket = await connectTls(node, { cert: c.clientCert, key: c.clientKey })
  const session = new Session(socket, { role: 'client', agent: 'test' })
  await new Promise<void>((resolve, reject) => {
    session.once('ready', resolve)
    session.once('error', reject)
  })
  session.on('error', () => {})
  return { socket, session }
}

/** One uwsgi request over the socket; the answer's bytes once the node closes. */
function uwsgiOver (socket: tls.TLSSocket, path: string): Promise<string> {
  return new Promise((resolve) => {
    const parts: Buffer[] = []
    socket.on('data', (d: Buffer) => parts.push(d))
    socket.on('error', () => {})
    socket.on('close', () => resolve(Buffer.concat(parts).toString('latin1')))
    socket.write(encodeUwsgiRequest({ ...emptyRequestHead(), path, authority: 'x' }))
  })
}

const CLIENT1 = (): { cert: string, key: string } => ({ cert: c.clientCert, key: c.clientKey })
const CLIENT2 = (): { cert: string, key: string } => ({ cert: c.otherClientCert, key: c.otherClientKey })

describe('SIGHUP re-reads the TLS files of tls:// listeners', { skip }, () => {
  test('a rotated certificate: new connections get it, a native session opened before keeps serving', async () => {
    const node = await startNode()
    const old = await nativeSession(node)
    assert.equal((await request(old.session, head('/text'))).body.toString(), 'GET ')
    assert.equal(old.socket.getPeerCertificate().serialNumber, serial(c.serverCert))

    // rotate to a certificate from another CA (the client CA stays)
    copyFileSync(c.otherServerCert, node.cert)
    copyFileSync(c.otherServerKey, node.key)
    const line = await hup(node.app, reloaded)
    assert.equal(line.cert, node.cert)
    assert.equal(line.key, node.key)
    assert.equal(line.clientCa, node.clientCa)
    await node.app.waitForLog(handlerReloaded) // the handler reload still happens

    const fresh = await connectTls(node, CLIENT1())
    assert.equal(fresh.getPeerCertificate().serialNumber, serial(c.otherServerCert))
    assert.equal(fresh.getPeerCertificate().subject.CN, 'other-server')
    assert.match(await uwsgiOver(fresh, '/text'), /^HTTP\/1\.1 200 [\s\S]*\r\n\r\nGET $/)

    // the connection from before: same certificate, still served (by the new handler pool)
    assert.equal(old.socket.getPeerCertificate().serialNumber, serial(c.serverCert))
    const r = await request(old.session, head('/text', { method: 'POST' }), 'after the reload')
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'POST after the reload')
    assert.equal(node.app.logs.filter((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE').length, 0)
    old.session.destroy()
  })

  test('a rotated client CA: certificates of the old CA are refused on new connections (also when resuming a session), the new CA\'s are served', async () => {
    const node = await startNode()
    // a session the old context issued, to try resuming after the change
    const first = await connectTls(node, CLIENT1())
    assert.match(await uwsgiOver(first, '/text'), /^HTTP\/1\.1 200 /)
    const session = await tickets.get(first)!
    const resumed = await connectTls(node, CLIENT1(), session)
    assert.equal(resumed.isSessionReused(), true, 'the node resumes sessions before the reload')
    assert.match(await uwsgiOver(resumed, '/text'), /^HTTP\/1\.1 200 /)

    copyFileSync(c.otherCa, node.clientCa)
    await hup(node.app, reloaded)

    for (const s of [undefined, session]) {
      const from = node.app.logs.length
      const refused = await connectTls(node, CLIENT1(), s)
      assert.equal(refused.isSessionReused(), false, 'no session of the old context is resumed')
      assert.equal(await uwsgiOver(refused, '/text'), '', 'nothing served')
      const line = await node.app.waitForLog((l) => node.app.logs.indexOf(l) >= from && l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE')
      // (this client sends its CA along, as it trusts it: then OpenSSL names the chain)
      assert.match(String(line.reason), /^(UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)$/)
    }
    const ok = await connectTls(node, CLIENT2())
    assert.match(await uwsgiOver(ok, '/text'), /^HTTP\/1\.1 200 [\s\S]*GET $/)
  })

  test('files that do not load: FERRY_ERR_APP_TLS_RELOAD, the running certificate stays, requests go on, the handler still reloads', async () => {
    const node = await startNode()
    const old = await nativeSession(node)

    writeFileSync(node.key, 'not a PEM key\n')
    const garbage = await hup(node.app, (l) => l.code === 'FERRY_ERR_APP_TLS_RELOAD' || reloaded(l))
    assert.equal(garbage.code, 'FERRY_ERR_APP_TLS_RELOAD')
    assert.equal(garbage.msg, 'TLS certificates not reloaded: keeping the running ones')
    assert.match(String(garbage.err), /not usable/)
    assert.equal(garbage.level, 50)
    await node.app.waitForLog((l) => node.app.logs.indexOf(l) > node.app.logs.indexOf(garbage) && handlerReloaded(l))

    // a key that does not match the certificate; a new certificate with the old key
    copyFileSync(c.clientKey, node.key)
    assert.match(String((await hup(node.app, (l) => l.code === 'FERRY_ERR_APP_TLS_RELOAD' || reloaded(l))).err), /not usable/)
    writeFileSync(node.key, readFileSync(c.serverKey))
    copyFileSync(c.otherServerCert, node.cert)
    assert.match(String((await hup(node.app, (l) => l.code === 'FERRY_ERR_APP_TLS_RELOAD' || reloaded(l))).err), /not usable/)

    // a client CA that is no certificate (OpenSSL alone would skip it and trust nothing)
    writeFileSync(node.cert, readFileSync(c.serverCert))
    writeFileSync(node.clientCa, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n')
    assert.match(String((await hup(node.app, (l) => l.code === 'FERRY_ERR_APP_TLS_RELOAD' || reloaded(l))).err), /not usable/)
    writeFileSync(node.clientCa, 'no PEM at all\n')
    assert.match(String((await hup(node.app, (l) => l.code === 'FERRY_ERR_APP_TLS_RELOAD' || reloaded(l))).err), /holds no PEM certificate/)

    const fresh = await connectTls(node, CLIENT1())
    assert.equal(fresh.getPeerCertificate().serialNumber, serial(c.serverCert), 'still the certificate of the start')
    assert.match(await uwsgiOver(fresh, '/text'), /^HTTP\/1\.1 200 [\s\S]*GET $/)
    assert.equal((await request(old.session, head('/text'))).body.toString(), 'GET ')
    old.session.destroy()
    assert.equal(node.app.logs.filter(reloaded).length, 0)
  })

  test('--help says what SIGHUP does with the TLS files', () => {
    const help = spawnSync(process.execPath, [BIN, 'app', '--help'], { encoding: 'utf8' }).stdout
    assert.match(help, /SIGHUP[\s\S]*kill -HUP/)
    assert.ok(help.includes('FERRY_ERR_APP_TLS_RELOAD'))
  })
})
