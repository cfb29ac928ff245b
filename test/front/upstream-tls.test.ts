/**
 * TLS with client certificates between a real `ferry front` and a real `ferry app` (issue 6):
 * tls:// and uwsgi+tls:// upstreams, the node verifying the front's certificate
 * (--tls-client-ca), the front verifying the node's (--upstream-tls-ca, -servername), each
 * refusal coded and logged on both sides, --auth on top of TLS, and the startup errors.
 * Certificates are made at test time with the openssl CLI (skipped without it).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { before, describe, test } from 'node:test'
import { type CertFiles, certsOrSkip } from '../helpers/certs.ts'
import { type FerryProcess, fileScope } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const SECRET = 'tls-and-a-shared-secret'
const { dir, start } = fileScope('ferry-utls-')
const { certs, skip } = certsOrSkip(dir, 'upstream TLS tests')
let c: CertFiles
/** One node requiring client certificates from our CA, shared by most tests. */
let node: FerryProcess


function appArgs (listen = 'tls://127.0.0.1:0'): string[] {
  return ['app', HANDLER, '--listen', listen, '--threads', '1', '--tls-cert', c.serverCert, '--tls-key', c.serverKey, '--tls-client-ca', c.ca]
}

function front (upstream: string, extra: string[], env: NodeJS.ProcessEnv = {}): Promise<FerryProcess> {
  return start(['front', '--listen', '127.0.0.1:0', '--upstream', upstream, '--no-access-log', '--connect-timeout', '2s', ...extra], env)
}

const GOOD = (): string[] => ['--upstream-tls-ca', c.ca, '--upstream-tls-cert', c.clientCert, '--upstream-tls-key', c.clientKey]

interface Answer { status: number, body: Buffer, code: string | undefined }

async function call (f: FerryProcess, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${f.addresses[0]!.replace('tcp://', 'http://')}${path}`, init)
  const body = Buffer.from(await res.arrayBuffer())
  let code: string | undefined
  if (res.status >= 500) code = (JSON.parse(body.toString()) as { code?: string }).code
  return { status: res.status, body, code }
}

/** The front refused the node over TLS: 502 with the TLS code in the answer and in its log. */
async function refused (f: FerryProcess, reason: RegExp): Promise<void> {
  const r = await call(f, '/text')
  assert.equal(r.status, 502, r.body.toString())
  assert.equal(r.code, 'FERRY_ERR_FRONT_UPSTREAM_TLS')
  const line = await f.waitForLog((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TLS' && l.msg === 'upstream TLS failed: node not used')
  assert.match(String(line.err), reason)
}

before(async () => {
  if (certs === null) return
  c = certs
  node = await start(appArgs())
  assert.match(node.addresses[0]!, /^tls:\/\/127\.0\.0\.1:\d+$/)
})

describe('front → app over TLS with client certificates', { skip }, () => {
  test('native codec (tls://): GET and a POST with a body come back byte for byte', async () => {
    const f = await front(node.addresses[0]!, GOOD())
    const get = await call(f, '/text')
    assert.equal(get.status, 200)
    assert.equal(get.body.toString(), 'GET ')
    const payload = randomBytes(300 * 1024)
    const post = await call(f, '/echo', { method: 'POST', body: payload })
    assert.equal(post.status, 200)
    assert.ok(post.body.equals(payload), 'echoed bytes equal')
    assert.equal(node.logs.filter((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE').length, 0)
  })

  test('uwsgi codec (uwsgi+tls://, nginx suwsgi): GET and POST on the same listener', async () => {
    const f = await front(`uwsgi+${node.addresses[0]!}`, GOOD())
    const get = await call(f, '/text')
    assert.equal(get.status, 200)
    assert.equal(get.body.toString(), 'GET ')
    const payload = randomBytes(64 * 1024)
    for (let i = 0; i < 3; i++) {
      const post = await call(f, '/echo', { method: 'POST', body: payload })
      assert.equal(post.status, 200)
      assert.ok(post.body.equals(payload))
    }
    const text = await call(f, '/text', { method: 'POST', body: 'über' })
    assert.equal(text.body.toString(), 'POST über')
  })

  test('--upstream-tls-servername localhost (a DNS name in the node certificate) works', async () => {
    const f = await front(node.addresses[0]!, [...GOOD(), '--upstream-tls-servername', 'localhost'])
    assert.equal((await call(f, '/text')).status, 200)
  })

  test('config files: the app\'s tlsCert/tlsKey/tlsClientCa, the front\'s upstreamTls (paths relative to the file)', async () => {
    const appConfig = join(dir, 'app.json')
    writeFileSync(appConfig, JSON.stringify({ handler: HANDLER, listen: ['tls://127.0.0.1:0'], threads: '1', tlsCert: c.serverCert, tlsKey: c.serverKey, tlsClientCa: c.ca }))
    const app = await start(['app', '--config', appConfig])
    const frontConfig = join(dir, 'front.json')
    writeFileSync(frontConfig, JSON.stringify({ upstreams: [app.addresses[0]], upstreamTls: { ca: 'ca.pem', cert: 'client.pem', key: 'client.key', servername: 'localhost' } }))
    const f = await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--config', frontConfig])
    assert.equal((await call(f, '/text')).body.toString(), 'GET ')
    // without the client certificate in the file, the node refuses the front
    const noCert = join(dir, 'front-nocert.json')
    writeFileSync(noCert, JSON.stringify({ upstreams: [app.addresses[0]], upstreamTls: { ca: 'ca.pem' } }))
    await refused(await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--config', noCert]), /CLOSED_AFTER_HANDSHAKE/)
    await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && l.reason === 'PEER_DID_NOT_RETURN_A_CERTIFICATE')
  })

  test('--auth on top of TLS: the same secret works; a wrong one still fails with FERRY_ERR_AUTH', async () => {
    const app = await start(appArgs(), { FERRY_APP_AUTH: SECRET })
    const ok = await front(app.addresses[0]!, GOOD(), { FERRY_FRONT_AUTH: SECRET })
    assert.equal((await call(ok, '/text')).status, 200)
    const wrong = await front(app.addresses[0]!, GOOD(), { FERRY_FRONT_AUTH: 'not-the-secret' })
    const r = await call(wrong, '/text')
    assert.ok(r.status === 502 || r.status === 503, `status ${r.status}`)
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_AUTH')
    assert.equal(line.msg, 'native connection error')
    assert.equal(app.logs.filter((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE').length, 0, 'TLS itself was fine')
  })
})

describe('the node refuses fronts without a good client certificate (--tls-client-ca)', { skip }, () => {
  test('no client certificate: the node logs FERRY_ERR_APP_TLS_HANDSHAKE, the front answers 502 FERRY_ERR_FRONT_UPSTREAM_TLS', async () => {
    const f = await front(node.addresses[0]!, ['--upstream-tls-ca', c.ca])
    await refused(f, /CLOSED_AFTER_HANDSHAKE/)
    const line = await node.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && l.reason === 'PEER_DID_NOT_RETURN_A_CERTIFICATE')
    assert.equal(line.remoteAddress, '127.0.0.1')
    assert.equal(line.address, node.addresses[0])
    assert.equal(line.msg, 'TLS connection refused')
  })

  test('a client certificate from another CA: refused likewise (UNABLE_TO_VERIFY_LEAF_SIGNATURE)', async () => {
    const f = await front(node.addresses[0]!, ['--upstream-tls-ca', c.ca, '--upstream-tls-cert', c.otherClientCert, '--upstream-tls-key', c.otherClientKey])
    await refused(f, /CLOSED_AFTER_HANDSHAKE/)
    await node.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && l.reason === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  })

  test('over uwsgi+tls:// too: the request fails with 502, the node logs the refusal', async () => {
    const before = node.logs.filter((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE').length
    const f = await front(`uwsgi+${node.addresses[0]!}`, ['--upstream-tls-ca', c.ca])
    const r = await call(f, '/text')
    assert.equal(r.status, 502, r.body.toString())
    await node.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE' && node.logs.indexOf(l) >= before)
  })

  test('over uwsgi+tls:// the health probe sees the refusal too: the node is not counted up, with no request sent', async () => {
    // uwsgi has no ping: the probe is a connection. A completed handshake used to count as
    // "up", re-admitting a node that refuses every request of this front.
    const f = await front(`uwsgi+${node.addresses[0]!}`, ['--upstream-tls-ca', c.ca, '--health-interval', '100ms'])
    const line = await f.waitForLog((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TLS' && l.msg === 'upstream TLS failed: node not used', 5000)
    assert.match(String(line.err), /CLOSED_AFTER_HANDSHAKE/)
    assert.equal(f.logs.filter((l) => l.msg === 'upstream node re-admitted').length, 0)
  })

  test('over uwsgi+tls:// with a good certificate the probes count the node up: no failure logged, requests served', async () => {
    const f = await front(`uwsgi+${node.addresses[0]!}`, [...GOOD(), '--health-interval', '100ms'])
    await new Promise((resolve) => setTimeout(resolve, 600))
    assert.deepEqual(f.logs.filter((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TLS' || /health check/.test(String(l.msg))), [])
    const r = await call(f, '/text')
    assert.equal(r.status, 200, r.body.toString())
  })
})

describe('the front refuses nodes whose certificate it cannot verify', { skip }, () => {
  test('no --upstream-tls-ca: Node\'s root CAs do not know our test CA', async () => {
    const f = await front(node.addresses[0]!, ['--upstream-tls-cert', c.clientCert, '--upstream-tls-key', c.clientKey])
    await refused(f, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
  })

  test('--upstream-tls-ca naming another CA', async () => {
    const f = await front(node.addresses[0]!, ['--upstream-tls-ca', c.otherCa, '--upstream-tls-cert', c.clientCert, '--upstream-tls-key', c.clientKey])
    await refused(f, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
  })

  test('a name the node certificate does not carry (--upstream-tls-servername)', async () => {
    const f = await front(node.addresses[0]!, [...GOOD(), '--upstream-tls-servername', 'other.example'])
    await refused(f, /ERR_TLS_CERT_ALTNAME_INVALID/)
  })

  test('over uwsgi+tls://: 502 FERRY_ERR_FRONT_UPSTREAM_TLS', async () => {
    const f = await front(`uwsgi+${node.addresses[0]!}`, ['--upstream-tls-ca', c.otherCa, '--upstream-tls-cert', c.clientCert, '--upstream-tls-key', c.clientKey])
    await refused(f, /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
  })
})

describe('front startup errors: no option parsed and ignored', { skip }, () => {
  function frontFails (args: string[], message: RegExp): void {
    const r = spawnSync(process.execPath, [BIN, 'front', '--listen', '127.0.0.1:0', '--no-access-log', ...args], { encoding: 'utf8', timeout: 15000 })
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /FERRY_ERR_FRONT_CONFIG/)
    assert.match(r.stderr, message)
  }

  test('--help lists the upstream TLS options and address forms', () => {
    const help = spawnSync(process.execPath, [BIN, 'front', '--help'], { encoding: 'utf8' }).stdout
    for (const s of ['tls://', 'uwsgi+tls://', '--upstream-tls-ca', '--upstream-tls-cert', '--upstream-tls-key', '--upstream-tls-servername', 'FERRY_ERR_FRONT_UPSTREAM_TLS']) assert.ok(help.includes(s), s)
  })

  test('--upstream-tls-* with no tls:// upstream', () => {
    frontFails(['--upstream', 'tcp://127.0.0.1:1', '--upstream-tls-ca', c.ca], /no upstream is tls:\/\//)
    frontFails(['--upstream', 'tcp://127.0.0.1:1', '--upstream-tls-servername', 'x'], /no upstream is tls:\/\//)
  })

  test('a client certificate without its key; an unreadable file; tls:// on the front\'s own --listen', () => {
    frontFails(['--upstream', 'tls://127.0.0.1:1', '--upstream-tls-cert', c.clientCert], /go together/)
    frontFails(['--upstream', 'tls://127.0.0.1:1', '--upstream-tls-ca', `${dir}/missing.pem`], /missing\.pem/)
    const r = spawnSync(process.execPath, [BIN, 'front', '--listen', 'tls://127.0.0.1:0', '--upstream', 'tcp://127.0.0.1:1'], { encoding: 'utf8', timeout: 15000 })
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /FERRY_ERR_FRONT_CONFIG.*--tls-cert/)
  })
})
