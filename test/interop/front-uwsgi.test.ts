/**
 * ferry front → a real uWSGI node (Debian uwsgi-core + uwsgi-plugin-python3) running a WSGI
 * app that echoes its environ: the environ matches what real nginx's `uwsgi_pass` (with
 * /etc/nginx/uwsgi_params) gives the same app for the same request.
 *
 * Intended differences, not compared:
 *   REMOTE_PORT, SERVER_PORT   each server's own socket ports
 *   DOCUMENT_ROOT              nginx sends its location root; ferry has none for dynamic requests ('')
 *   HTTP_CONNECTION, HTTP_KEEP_ALIVE, HTTP_TE, HTTP_UPGRADE, HTTP_PROXY_*
 *                              nginx's uwsgi module passes the client's hop-by-hop headers on;
 *                              ferry strips them (they describe the client's connection, not the request)
 *   HTTP_X_REQUEST_ID          ferry adds its request id (the same id is in its access log)
 * Repeated headers: nginx 1.22 (Debian) sends one var per occurrence (uWSGI keeps the last);
 * ferry joins them with ", " as nginx ≥ 1.23 does — checked separately below.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { nginxMissing, startNginx } from '../helpers/nginx.ts'
import { baseUrl, fetchRaw, fileHooks, ROOT, sleep, startFront, tempDir } from '../front/helpers.ts'
import { spawn } from 'node:child_process'

const UWSGI = '/usr/bin/uwsgi'
const PLUGIN_DIRS = ['/usr/lib/uwsgi/plugins/python3_plugin.so', '/usr/lib/uwsgi/plugins/python311_plugin.so']
const missing = !existsSync(UWSGI)
  ? `uWSGI not installed (${UWSGI}); apt-get install uwsgi-core uwsgi-plugin-python3 to run this test`
  : !PLUGIN_DIRS.some(existsSync) ? 'uwsgi-plugin-python3 not installed' : undefined
if (missing !== undefined) process.stdout.write(`# skip front-uwsgi: ${missing}\n`)

const hooks = fileHooks(after)
const APP = join(ROOT, 'test/fixtures/wsgi/echo_environ.py')
type Environ = Record<string, string | number>

async function startUwsgi (sock: string): Promise<void> {
  // Its own process group: uWSGI forks workers, and all of them must go at the end.
  const child = spawn(UWSGI, ['--plugin', 'python3', '--uwsgi-socket', sock, '--wsgi-file', APP, '--processes', '2', '--disable-logging', '--die-on-term'], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  hooks.after(async () => {
    const exited = child.exitCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve))
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {}
    await exited
    child.stderr!.destroy()
  })
  for (let i = 0; i < 200 && !existsSync(sock); i++) await sleep(25)
  if (!existsSync(sock)) throw new Error(`uWSGI did not start: ${stderr}`)
}

function request (url: string, headers: string[], method = 'GET', body?: Buffer): Promise<{ status: number, environ: Environ, headers: string[] }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString()
        try {
          resolve({ status: res.statusCode!, environ: JSON.parse(text) as Environ, headers: res.rawHeaders })
        } catch {
          reject(new Error(`${res.statusCode}: ${text.slice(0, 300)}`))
        }
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

const NOT_COMPARED = new Set(['REMOTE_PORT', 'SERVER_PORT', 'DOCUMENT_ROOT', 'HTTP_CONNECTION', 'HTTP_KEEP_ALIVE', 'HTTP_TE', 'HTTP_UPGRADE', 'HTTP_X_REQUEST_ID'])

function comparable (e: Environ): Environ {
  const out: Environ = {}
  for (const [k, v] of Object.entries(e)) {
    if (NOT_COMPARED.has(k) || k.startsWith('HTTP_PROXY_')) continue
    out[k] = v
  }
  return out
}

describe('front → real uWSGI, compared with nginx uwsgi_pass', { skip: missing ?? nginxMissing() }, () => {
  let frontUrl: string
  let nginxUrl: string
  before(async () => {
    const dir = tempDir(hooks)
    const sock = join(dir, 'uwsgi.sock')
    await startUwsgi(sock)
    const front = await startFront(hooks, ['--upstream', `uwsgi+unix:${sock}`])
    frontUrl = baseUrl(front.addresses[0]!)
    const ngx = await startNginx(hooks, { location: `uwsgi_pass unix:${sock}; include /etc/nginx/uwsgi_params;` })
    nginxUrl = ngx.url
  })

  const cases: Array<{ name: string, method: string, path: string, headers: string[], body?: Buffer }> = [
    { name: 'GET with a query', method: 'GET', path: '/hello/world?x=1&y=%20z', headers: ['Host', 'example.test', 'User-Agent', 'ferry-test', 'Accept', '*/*', 'X-Custom-Header', 'v1'] },
    { name: 'UTF-8 and encoded path', method: 'GET', path: `/p/${encodeURIComponent('ünï')}/a%2Fb/../c?q=${encodeURIComponent('日本')}`, headers: ['Host', 'Example.Test:8080', 'Cookie', 'a=1'] },
    { name: 'POST with a body', method: 'POST', path: '/submit', headers: ['Host', 'example.test', 'Content-Type', 'application/json', 'Content-Length', '13'], body: Buffer.from('{"hello":"x"}') },
    { name: 'hop-by-hop headers', method: 'GET', path: '/h', headers: ['Host', 'example.test', 'Connection', 'keep-alive', 'Keep-Alive', 'timeout=5', 'X-A', 'b'] }
  ]
  for (const c of cases) {
    test(`environ matches nginx: ${c.name}`, async () => {
      const viaFerry = await request(`${frontUrl}${c.path}`, c.headers, c.method, c.body)
      const viaNginx = await request(`${nginxUrl}${c.path}`, c.headers, c.method, c.body)
      assert.equal(viaFerry.status, 200)
      assert.equal(viaNginx.status, 200)
      assert.deepEqual(comparable(viaFerry.environ), comparable(viaNginx.environ))
      assert.equal(viaFerry.environ.HTTP_CONNECTION, undefined)
      assert.match(String(viaFerry.environ.HTTP_X_REQUEST_ID), /^[0-9a-f]+-[0-9a-z]+$/)
    })
  }

  test('repeated headers: joined with ", " (nginx ≥ 1.23), where 1.22 leaves uWSGI only the last', async () => {
    const headers = ['Host', 'example.test', 'X-Multi', 'one', 'X-Multi', 'two']
    const viaFerry = await request(`${frontUrl}/r`, headers)
    const viaNginx = await request(`${nginxUrl}/r`, headers)
    assert.equal(viaFerry.environ.HTTP_X_MULTI, 'one, two')
    assert.ok(viaNginx.environ.HTTP_X_MULTI === 'two' || viaNginx.environ.HTTP_X_MULTI === 'one, two')
  })

  test('response: repeated headers and status pass through; chunked uploads are buffered for CONTENT_LENGTH', async () => {
    const res = await fetchRaw(`${frontUrl}/x`)
    const multi = res.rawHeaders.filter((_, i) => i % 2 === 1 && res.rawHeaders[i - 1]!.toLowerCase() === 'x-multi')
    assert.deepEqual(multi, ['one', 'two'])
    const body = Buffer.alloc(300000, 'q')
    const up = await request(`${frontUrl}/up`, ['Host', 'example.test', 'Transfer-Encoding', 'chunked'], 'POST', body)
    assert.equal(up.environ._body_length, body.length)
    assert.equal(up.environ.CONTENT_LENGTH, String(body.length))
    assert.equal(up.environ._body_sha256, createHash('sha256').update(body).digest('hex'))
  })

  test('a 20 MiB streamed response arrives intact', async () => {
    const res = await fetchRaw(`${frontUrl}/big?n=${20 * 1024 * 1024}`)
    assert.equal(res.status, 200)
    assert.equal(res.body.length, 20 * 1024 * 1024)
  })
})
