/**
 * `ferry front` re-reads its --upstream-tls-* files on SIGHUP (issue 6, certificate
 * rotation): with and without --config, new connections to tls:// nodes use the new CA while
 * open native sessions go on; a TLS session cached under the old settings is not resumed
 * (the node is verified against the new CA); files that do not load leave the running
 * settings in place (FERRY_ERR_FRONT_TLS_RELOAD). Real `ferry app` nodes rotate their own
 * certificate with SIGHUP too. Certificates are made at test time with the openssl CLI.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { type CertFiles, certsOrSkip } from '../helpers/certs.ts'
import { type FerryProcess, type LogLine, fileScope, hup } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const scope = fileScope('ferry-utlsr-')
const start = (args: string[]): Promise<FerryProcess> => scope.start(args)
const { certs, skip } = certsOrSkip(scope.dir, 'upstream TLS reload tests')
const c = certs as CertFiles


let folders = 0
function folder (): string {
  const dir = join(scope.dir, `f${folders++}`)
  mkdirSync(dir)
  return dir
}

/** A node requiring client certificates from the first CA, its cert/key copies in `dir`. */
async function startNode (listeners = 1): Promise<{ app: FerryProcess, cert: string, key: string }> {
  const dir = folder()
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  copyFileSync(c.serverCert, cert)
  copyFileSync(c.serverKey, key)
  const listen = Array.from({ length: listeners }, () => ['--listen', 'tls://127.0.0.1:0']).flat()
  const app = await start(['app', HANDLER, ...listen, '--threads', '1', '--tls-cert', cert, '--tls-key', key, '--tls-client-ca', c.ca])
  return { app, cert, key }
}

const frontReloaded = (l: LogLine): boolean => l.msg === 'upstream TLS reloaded: new connections to tls:// nodes use these files'
const frontNotReloaded = (l: LogLine): boolean => l.code === 'FERRY_ERR_FRONT_TLS_RELOAD'
const nodeReloaded = (l: LogLine): boolean => l.msg === 'TLS certificates reloaded: new connections use them'

const CLIENT = (): string[] => ['--upstream-tls-cert', c.clientCert, '--upstream-tls-key', c.clientKey]

async function call (f: FerryProcess, path = '/text'): Promise<{ status: number, body: string, code: string | undefined }> {
  const res = await fetch(`${f.addresses[0]!.replace('tcp://', 'http://')}${path}`)
  const body = await res.text()
  let code: string | undefined
  if (res.status >= 500) code = (JSON.parse(body) as { code?: string }).code
  return { status: res.status, body, code }
}

async function served (f: FerryProcess): Promise<void> {
  const r = await call(f)
  assert.equal(r.status, 200, r.body)
  assert.equal(r.body, 'GET ')
}

async function refusedTls (f: FerryProcess): Promise<void> {
  const r = await call(f)
  assert.equal(r.status, 502, r.body)
  assert.equal(r.code, 'FERRY_ERR_FRONT_UPSTREAM_TLS')
}

const bundle = (...files: string[]): string => files.map((f) => readFileSync(f, 'utf8')).join('')

describe('SIGHUP re-reads the front\'s upstream TLS files', { skip }, () => {
  test('a node rotates to a certificate of a new CA: the front refuses it until its CA file has the new CA and it gets SIGHUP (uwsgi+tls:// without --config; tls:// with --config, open sessions kept)', async () => {
    const node = await startNode(2)
    const [l1, l2] = node.app.addresses as [string, string]

    // uwsgi+tls:// (a connection per request), no config file
    const uDir = folder()
    const uCa = join(uDir, 'ca.pem')
    copyFileSync(c.ca, uCa)
    const fu = await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--connect-timeout', '2s', '--upstream', `uwsgi+${l1}`, '--upstream-tls-ca', uCa, ...CLIENT()])
    // tls:// (persistent native sessions), settings in a config file
    const nDir = folder()
    const nCa = join(nDir, 'ca.pem')
    copyFileSync(c.ca, nCa)
    const nConfig = join(nDir, 'front.json')
    const config = (upstream: string): void => writeFileSync(nConfig, JSON.stringify({ upstreams: [upstream], upstreamTls: { ca: 'ca.pem', cert: c.clientCert, key: c.clientKey } }))
    config(l1)
    const fn = await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--connect-timeout', '2s', '--config', nConfig])
    await served(fu)
    await served(fn)

    // the node rotates to the other CA's certificate (on both its listeners)
    copyFileSync(c.otherServerCert, node.cert)
    copyFileSync(c.otherServerKey, node.key)
    await hup(node.app, nodeReloaded)
    await refusedTls(fu) // a new connection: the node's new certificate is not from uCa's CA
    await served(fn) // the open native sessions go on

    // SIGHUP with the same CA file: re-read, still refused; the warning names what is not re-read
    const warn = await hup(fu, (l) => l.level === 40 && String(l.msg).startsWith('SIGHUP'))
    assert.equal(warn.msg, 'SIGHUP: no --config file to re-read: upstreams unchanged (the upstream TLS files are re-read)')
    const same = await fu.waitForLog((l) => fu.logs.indexOf(l) > fu.logs.indexOf(warn) && frontReloaded(l))
    assert.equal(same.ca, uCa)
    assert.equal(same.cert, c.clientCert)
    await refusedTls(fu)
    // the CA file now holds both CAs: served again
    writeFileSync(uCa, bundle(c.ca, c.otherCa))
    await hup(fu, frontReloaded)
    await served(fu)
    await served(fu)

    // the config front moves to the node's other listener: new connections there, refused
    config(l2)
    await hup(fn, (l) => l.msg === 'reloaded upstreams')
    await refusedTls(fn)
    // new CA file + SIGHUP: the node reconnects (its backoff is at most 2 s) and serves
    writeFileSync(nCa, bundle(c.otherCa))
    const from = fn.logs.length
    const line = await hup(fn, frontReloaded)
    assert.equal(line.ca, nCa)
    await fn.waitForLog((l) => fn.logs.indexOf(l) >= from && l.msg === 'upstream node reconnected')
    await served(fn)
    assert.equal(fn.logs.filter(frontNotReloaded).length + fu.logs.filter(frontNotReloaded).length, 0)
  })

  test('a TLS session from before the reload is not resumed: the node is verified against the new CA', async () => {
    const node = await startNode()
    const dir = folder()
    const ca = join(dir, 'ca.pem')
    copyFileSync(c.ca, ca)
    // uwsgi+tls://: every request is a new connection, resuming the node's last TLS session
    const f = await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--connect-timeout', '2s', '--upstream', `uwsgi+${node.app.addresses[0]!}`, '--upstream-tls-ca', ca, ...CLIENT()])
    await served(f)
    await served(f)
    // the front stops trusting the node's CA; the node is unchanged (it would resume the session)
    writeFileSync(ca, readFileSync(c.otherCa))
    await hup(f, frontReloaded)
    await refusedTls(f)
    const line = await f.waitForLog((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TLS' && l.msg === 'upstream TLS failed: node not used')
    assert.match(String(line.err), /SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE/)
  })

  test('files that do not load: FERRY_ERR_FRONT_TLS_RELOAD, the running settings stay, requests go on', async () => {
    const node = await startNode()
    const dir = folder()
    const ca = join(dir, 'ca.pem')
    const cert = join(dir, 'client.pem')
    const key = join(dir, 'client.key')
    copyFileSync(c.ca, ca)
    copyFileSync(c.clientCert, cert)
    copyFileSync(c.clientKey, key)
    const f = await start(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--connect-timeout', '2s', '--upstream', `uwsgi+${node.app.addresses[0]!}`, '--upstream-tls-ca', ca, '--upstream-tls-cert', cert, '--upstream-tls-key', key])
    await served(f)

    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n')
    const bad = await hup(f, (l) => frontNotReloaded(l) || frontReloaded(l))
    assert.equal(bad.code, 'FERRY_ERR_FRONT_TLS_RELOAD')
    assert.equal(bad.level, 50)
    assert.equal(bad.msg, 'SIGHUP: upstream TLS files not reloaded: keeping the running settings')
    assert.match(String(bad.err), /not usable/)
    assert.equal(bad.ca, ca)
    await served(f)

    // a client key that does not match its certificate; a file that is gone
    copyFileSync(c.ca, ca)
    copyFileSync(c.otherClientKey, key)
    assert.match(String((await hup(f, (l) => frontNotReloaded(l) || frontReloaded(l))).err), /not usable/)
    await served(f)
    rmSync(key)
    assert.match(String((await hup(f, (l) => frontNotReloaded(l) || frontReloaded(l))).err), /--upstream-tls-key .*client\.key: ENOENT/)
    await served(f)
    await served(f)
    assert.equal(f.logs.filter(frontReloaded).length, 0)
  })

  test('--help says what SIGHUP does with the TLS files', () => {
    const help = spawnSync(process.execPath, [BIN, 'front', '--help'], { encoding: 'utf8' }).stdout
    assert.match(help, /SIGHUP[\s\S]*kill -HUP/)
    assert.ok(help.includes('FERRY_ERR_FRONT_TLS_RELOAD'))
  })
})
