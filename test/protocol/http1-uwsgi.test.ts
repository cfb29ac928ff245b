/**
 * The codec against a real uWSGI node (Debian uwsgi-core + uwsgi-plugin-python3): packets
 * from encodeUwsgiRequest reach a WSGI app with the environ nginx would give it, and
 * Http1ResponseParser reads what uWSGI writes back (Content-Length, close-delimited, 204,
 * repeated Set-Cookie), fed chunk by chunk as the socket delivers them. Also shows uWSGI's
 * own failure mode for a vars block past its buffer-size: a bare RST and no response.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { emptyRequestHead, encodeUwsgiRequest, type HeaderList, Http1ResponseParser, type RequestHead, type ResponseHead } from '@ferry/protocol'
import { cleanupHooks } from '../fixtures/nginx-golden/capture.ts'
import { tempDir } from '../helpers/tmp.ts'

const UWSGI = '/usr/bin/uwsgi'
const PLUGINS = ['/usr/lib/uwsgi/plugins/python3_plugin.so', '/usr/lib/uwsgi/plugins/python311_plugin.so']
const skip = !existsSync(UWSGI)
  ? `uWSGI not installed (${UWSGI}); apt-get install uwsgi-core uwsgi-plugin-python3 to run this test`
  : !PLUGINS.some((p) => existsSync(p)) ? 'uwsgi-plugin-python3 not installed' : undefined
if (skip !== undefined) process.stdout.write(`# skip http1-uwsgi: ${skip}\n`)

const APP = `
import json

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'one-', b'two-', b'three']
    if path == '/empty':
        start_response('204 No Content', [('X-Empty', 'yes')])
        return []
    body = environ['wsgi.input'].read()
    keys = ['REQUEST_METHOD', 'REQUEST_URI', 'PATH_INFO', 'QUERY_STRING', 'CONTENT_TYPE', 'CONTENT_LENGTH',
            'SERVER_PROTOCOL', 'REQUEST_SCHEME', 'HTTPS', 'REMOTE_ADDR', 'REMOTE_PORT', 'SERVER_NAME', 'SERVER_PORT',
            'HTTP_HOST', 'HTTP_COOKIE', 'HTTP_ACCEPT', 'HTTP_X_REQUEST_ID', 'HTTP_X_CUSTOM']
    out = {k: environ[k] for k in keys if k in environ}
    out['body'] = body.decode('latin1')
    data = json.dumps(out).encode()
    start_response('201 Created', [('Content-Type', 'application/json'), ('Set-Cookie', 'a=1; Path=/'),
                                   ('Set-Cookie', 'b=2; HttpOnly'), ('Content-Length', str(len(data)))])
    return [data]
`

interface Answer {
  head: ResponseHead
  reason: string
  body: string
  trailers: HeaderList
  chunks: number
}

/** One uwsgi exchange over a fresh connection, the response parsed as it arrives. */
function exchange (sock: string, packet: Buffer, body: Buffer = Buffer.alloc(0)): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const out: Partial<Answer> = { body: '', chunks: 0 }
    const parser = new Http1ResponseParser({
      onHead (head, reason) {
        out.head = head
        out.reason = reason
      },
      onBody (c) { out.body += c.toString('latin1') },
      onEnd (trailers) { out.trailers = trailers }
    })
    const s = net.connect(sock)
    s.on('connect', () => {
      s.cork()
      s.write(packet)
      if (body.length > 0) s.write(body)
      s.uncork()
    })
    s.on('data', (d: Buffer) => {
      out.chunks!++
      try {
        parser.push(d)
      } catch (err) {
        s.destroy()
        reject(err)
      }
    })
    s.on('error', reject)
    s.on('end', () => {
      try {
        parser.end()
        resolve(out as Answer)
      } catch (err) {
        reject(err)
      }
    })
    s.setTimeout(10_000, () => s.destroy(new Error('uWSGI did not answer')))
  })
}

function head (extra: Partial<RequestHead>): RequestHead {
  return {
    ...emptyRequestHead(),
    authority: 'app.test',
    headers: ['host', 'app.test'],
    remoteAddress: '192.0.2.10',
    remotePort: 40000,
    serverName: 'front',
    serverPort: 8080,
    ...extra
  }
}

describe('codec ↔ real uWSGI', { skip }, () => {
  const hooks = cleanupHooks()
  let sock = ''
  before(async () => {
    const dir = tempDir(hooks, 'ferry-uwsgi-')
    sock = join(dir, 'app.sock')
    const app = join(dir, 'app.py')
    writeFileSync(app, APP)
    const child = spawn(UWSGI, ['--plugin', 'python3', '--uwsgi-socket', sock, '--wsgi-file', app, '--processes', '1',
      '--disable-logging', '--die-on-term', '--master'], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    hooks.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
        await exited
        clearTimeout(timer)
      }
    })
    const deadline = Date.now() + 15_000
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const c = net.connect(sock)
        c.on('connect', () => { c.destroy(); resolve(true) })
        c.on('error', () => resolve(false))
      })
      if (ok && stderr.includes('spawned uWSGI worker')) break
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`uWSGI did not start:\n${stderr}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })
  after(() => hooks.run())

  test('POST: the app sees nginx\'s environ; the response (201, two Set-Cookie, Content-Length) parses', async () => {
    const body = Buffer.from('name=ferry&x=%C3%A9')
    const h = head({
      method: 'POST',
      path: '/submit/caf%C3%A9?a=1&b=2',
      scheme: 'https',
      requestId: 'rid-7',
      bodyLength: body.length,
      headers: ['host', 'App.Test:8443', 'cookie', 'x=1', 'accept', 'text/html', 'content-type', 'application/x-www-form-urlencoded',
        'content-length', String(body.length), 'cookie', 'y=2', 'accept', 'application/json', 'x-custom', 'caf\xe9']
    })
    const r = await exchange(sock, encodeUwsgiRequest(h), body)
    assert.equal(r.head.status, 201)
    assert.equal(r.reason, 'Created')
    assert.deepEqual(r.head.headers.filter((_, i) => i % 2 === 0), ['content-type', 'set-cookie', 'set-cookie', 'content-length'])
    assert.deepEqual(r.head.headers.slice(2, 6), ['set-cookie', 'a=1; Path=/', 'set-cookie', 'b=2; HttpOnly'])
    assert.equal(r.head.bodyLength, Buffer.byteLength(r.body, 'latin1'))
    assert.deepEqual(r.trailers, [])
    const env = JSON.parse(r.body) as Record<string, string>
    assert.deepEqual(env, {
      REQUEST_METHOD: 'POST',
      REQUEST_URI: '/submit/caf%C3%A9?a=1&b=2',
      PATH_INFO: '/submit/caf\xc3\xa9', // WSGI hands PATH_INFO over as latin1-decoded bytes (PEP 3333)
      QUERY_STRING: 'a=1&b=2',
      CONTENT_TYPE: 'application/x-www-form-urlencoded',
      CONTENT_LENGTH: String(body.length),
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_SCHEME: 'https',
      HTTPS: 'on',
      REMOTE_ADDR: '192.0.2.10',
      REMOTE_PORT: '40000',
      SERVER_NAME: 'front',
      SERVER_PORT: '8080',
      HTTP_HOST: 'app.test',
      HTTP_COOKIE: 'x=1; y=2', // joined: uWSGI would keep only the last of repeated vars
      HTTP_ACCEPT: 'text/html, application/json',
      HTTP_X_REQUEST_ID: 'rid-7',
      HTTP_X_CUSTOM: 'caf\xe9',
      body: body.toString('latin1')
    })
  })

  test('a body without Content-Length ends when uWSGI closes the connection', async () => {
    const r = await exchange(sock, encodeUwsgiRequest(head({ path: '/stream' })))
    assert.equal(r.head.status, 200)
    assert.equal(r.head.bodyLength, -1)
    assert.equal(r.body, 'one-two-three')
  })

  test('204 from the app: no body', async () => {
    const r = await exchange(sock, encodeUwsgiRequest(head({ path: '/empty' })))
    assert.equal(r.head.status, 204)
    assert.deepEqual(r.head.headers, ['x-empty', 'yes'])
    assert.equal(r.head.bodyLength, 0)
    assert.equal(r.body, '')
  })

  test('a vars block past uWSGI\'s buffer-size (4096): uWSGI answers with a bare RST, not a word', async () => {
    const packet = encodeUwsgiRequest(head({ headers: ['host', 'app.test', 'x-big', 'v'.repeat(5000)] }))
    assert.ok(packet.readUInt16LE(1) > 4096)
    // what nginx turns into a 502 (unbit/uwsgi#1164); ferry's UwsgiDecoder names the cause instead
    await assert.rejects(exchange(sock, packet), { code: 'ECONNRESET' })
  })
})
