/**
 * TLS and HTTP/2 towards clients (`--tls-cert/--tls-key --http2`), and the access log:
 * one pino line per request with method, path, status, bytes, ms, reqId, upstream.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { connect } from 'node:http2'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { fetchRaw, fileHooks, startProc, CLI, startNode, tempDir, baseUrl } from './helpers.ts'

const hooks = fileHooks(after)

test('TLS + HTTP/2: h2 and HTTP/1.1 over TLS reach the app with scheme https', async (t) => {
  if (!existsSync('/usr/bin/openssl')) {
    t.skip('openssl not installed')
    return
  }
  const dir = tempDir(hooks)
  const cert = join(dir, 'cert.pem')
  const key = join(dir, 'key.pem')
  execFileSync('/usr/bin/openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' })
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'tls')
  const front = await startProc(hooks, [CLI, 'front', '--listen', '127.0.0.1:0', '--no-access-log', '--upstream', node.addresses[0]!, '--tls-cert', cert, '--tls-key', key, '--http2'])
  const origin = `https://${front.addresses[0]!.replace('tcp://', '')}`

  const h2 = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const session = connect(origin, { rejectUnauthorized: false })
    session.on('error', reject)
    const req = session.request({ ':path': '/echo?x=1', ':method': 'POST', 'x-test': 'h2' })
    let status = 0
    let body = ''
    req.on('response', (h) => { status = Number(h[':status']) })
    req.setEncoding('utf8')
    req.on('data', (d: string) => { body += d })
    req.on('end', () => { session.close(); resolve({ status, body }) })
    req.end('h2 body')
  })
  assert.equal(h2.status, 200)
  const e2 = JSON.parse(h2.body) as { scheme: string, protocol: string, bytes: number, headers: string[], path: string, authority: string }
  assert.equal(e2.scheme, 'https')
  assert.equal(e2.protocol, 'HTTP/2')
  assert.equal(e2.bytes, 7)
  assert.equal(e2.path, '/echo?x=1')
  assert.equal(e2.authority, front.addresses[0]!.replace('tcp://', ''))
  assert.ok(!e2.headers.some((h) => h.startsWith(':')), 'no pseudo-headers in the head')

  const h1 = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    const req = httpsRequest(`${origin}/echo`, { rejectUnauthorized: false, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, body }))
    })
    req.on('error', reject)
    req.end()
  })
  assert.equal(h1.status, 200)
  const e1 = JSON.parse(h1.body) as { scheme: string, protocol: string }
  assert.equal(e1.scheme, 'https')
  assert.equal(e1.protocol, 'HTTP/1.1')
})

test('access log: one line per request with the request id and upstream node', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'log')
  const front = await startProc(hooks, [CLI, 'front', '--listen', '127.0.0.1:0', '--upstream', node.addresses[0]!, '--static', join(dir)])
  const url = baseUrl(front.addresses[0]!)
  const res = await fetchRaw(`${url}/hello?x=1`)
  const line = await front.waitFor((l) => l.msg === 'request' && l.path === '/hello?x=1')
  assert.equal(line.method, 'GET')
  assert.equal(line.status, 200)
  assert.equal(line.bytes, res.body.length)
  assert.equal(typeof line.ms, 'number')
  assert.equal(line.upstream, node.addresses[0])
  assert.match(line.reqId as string, /^[0-9a-f]+-[0-9a-z]+$/)
  await fetchRaw(`${url}/n.sock`) // a static path (a socket file is not served: falls through)
  const err = await fetchRaw(`${url}/hello`, { method: 'POST', body: 'x', headers: { 'content-length': '1' } })
  assert.equal(err.status, 200)
  const lines = front.lines.filter((l) => l.msg === 'request' && l.path === '/hello?x=1')
  assert.equal(lines.length, 1, 'exactly one line per request')
})
