/**
 * Mounts, middleware and CGI through the real tiers: `ferry front` (ferry native over a unix
 * socket) and Debian's nginx (`uwsgi_pass` over the same socket) give the same answers as a
 * direct native request: a fetch mount (path and script name), a middleware (compression,
 * CORS, request id), CGI programs (GET, POST on stdin, Status, local redirect). nginx parts
 * skip when nginx is not installed.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { gunzipSync } from 'node:zlib'
import type { Session } from '@ferry/protocol'
import { request as undiciRequest } from 'undici'
import { connect, head, request } from '../app-server/client.ts'
import { type NginxInstance, nginxMissing, startNginx } from '../helpers/nginx.ts'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

interface Answer { status: number, headers: Record<string, string | undefined>, body: Buffer }

interface Case {
  name: string
  method?: string
  path: string
  headers?: [string, string][]
  body?: string
  /** Response headers compared across the tiers. */
  compare?: string[]
  /** What of the body is compared (hosts and ports differ per tier). */
  view?: (a: Answer) => unknown
}

const BIG = 'ferry compresses this line. '.repeat(200)

function cgiVars (a: Answer): Record<string, string> {
  const keep = ['GATEWAY_INTERFACE', 'REQUEST_METHOD', 'QUERY_STRING', 'SCRIPT_NAME', 'PATH_INFO', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'HTTP_X_CUSTOM', 'HTTP_AUTHORIZATION']
  const out: Record<string, string> = {}
  for (const line of a.body.toString().split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0 && keep.includes(line.slice(0, eq))) out[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return out
}

const CASES: Case[] = [
  {
    name: 'fetch mount: path below the prefix and script name',
    path: '/api/users/7?x=1',
    view: (a) => { const j = JSON.parse(a.body.toString()); return [j.app, j.pathname, j.search, j.scriptName, new URL(j.originalUrl).pathname] }
  },
  { name: 'root mount', path: '/apix', view: (a) => { const j = JSON.parse(a.body.toString()); return [j.app, j.pathname, j.scriptName] } },
  {
    name: 'middleware: gzip negotiated, Vary, request id echoed',
    path: '/mw/big',
    headers: [['accept-encoding', 'gzip;q=1, br;q=0']],
    compare: ['content-encoding', 'vary', 'content-type'],
    view: (a) => { assert.ok(a.headers['x-request-id']); return gunzipSync(a.body).toString() === BIG }
  },
  {
    name: 'middleware: CORS preflight answered by the middleware',
    method: 'OPTIONS',
    path: '/mw/anything',
    headers: [['origin', 'https://ok.example'], ['access-control-request-method', 'PUT']],
    compare: ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-max-age'],
    view: (a) => a.body.byteLength
  },
  { name: 'CGI: GET with query and PATH_INFO', path: '/cgi-bin/hello.sh/more?a=1&b=2', headers: [['x-custom', 'c']], compare: ['content-type', 'x-cgi'], view: cgiVars },
  {
    name: 'CGI: POST body on stdin (Python)',
    method: 'POST',
    path: '/cgi-bin/echo.py',
    headers: [['content-type', 'text/plain']],
    body: 'posted through the tiers',
    compare: ['content-type'],
    view: (a) => { const j = JSON.parse(a.body.toString()); return [j.body, j.env.CONTENT_LENGTH, j.env.CONTENT_TYPE, j.env.REQUEST_METHOD] }
  },
  { name: 'CGI: Status 404', path: '/cgi-bin/status.sh', view: (a) => a.body.toString() },
  { name: 'CGI: local redirect', path: '/cgi-bin/redirect.sh?local', view: cgiVars },
  { name: 'CGI: client redirect', path: '/cgi-bin/redirect.sh', compare: ['location'], view: () => null },
  // (not %2e%2e: the client's URL parser would resolve that before sending)
  { name: 'CGI: traversal refused', path: '/cgi-bin/..%2fcgi-outside%2fevil.sh', compare: ['x-ferry-error'], view: () => null }
]

describe('mounts, middleware and CGI through ferry front and nginx', () => {
  let app: FerryProcess
  let front: FerryProcess
  let native: Session
  let nginx: NginxInstance | null = null
  const tmp = tempDir()
  const hooks: (() => unknown)[] = []
  const skipNginx = nginxMissing()
  if (skipNginx !== undefined) console.log(`# skip nginx cases: ${skipNginx}`)

  before(async () => {
    const sock = join(tmp.dir, 'app.sock')
    const config = join(tmp.dir, 'app.json')
    writeFileSync(config, JSON.stringify({
      listen: [`unix:${sock}`],
      threads: '1',
      mounts: [
        { prefix: '/api', handler: 'test/fixtures/mounts/api.ts' },
        { prefix: '/mw', handler: 'test/fixtures/middleware/app.ts', middleware: ['request-id', { name: 'cors', origins: ['https://ok.example'], maxAge: 60 }, 'compress'] },
        { prefix: '/cgi-bin', cgi: 'test/fixtures/cgi-bin', timeout: 5 },
        { prefix: '/', handler: 'test/fixtures/mounts/site.ts' }
      ]
    }))
    app = await startFerry(['app', '--config', config])
    native = await connect(app.addresses[0]!)
    front = await startFerry(['front', '--listen', '127.0.0.1:0', '--no-access-log', '--upstream', `unix:${sock}`])
    if (skipNginx === undefined) {
      nginx = await startNginx({ after: (fn) => { hooks.push(fn) } }, { location: `uwsgi_pass unix:${sock}; include /etc/nginx/uwsgi_params;` })
    }
  })
  after(async () => {
    native?.destroy()
    for (const h of hooks.reverse()) await h()
    await front?.stop()
    await app?.stop()
    tmp.cleanup()
  })

  async function direct (c: Case): Promise<Answer> {
    const r = await request(native, head(c.path, { method: c.method ?? 'GET', headers: (c.headers ?? []).flat() }), c.body)
    const headers: Record<string, string | undefined> = {}
    for (let i = 0; i < r.headers.length; i += 2) headers[r.headers[i]!] = headers[r.headers[i]!] === undefined ? r.headers[i + 1] : `${headers[r.headers[i]!]}, ${r.headers[i + 1]}`
    return { status: r.status, headers, body: r.body }
  }

  async function http (base: string, c: Case): Promise<Answer> {
    const res = await undiciRequest(`${base}${c.path}`, { method: (c.method ?? 'GET') as 'GET', headers: Object.fromEntries(c.headers ?? []), body: c.body })
    const body = Buffer.from(await res.body.arrayBuffer())
    const headers: Record<string, string | undefined> = {}
    for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : v
    return { status: res.statusCode, headers, body }
  }

  for (const c of CASES) {
    test(c.name, async () => {
      const want = await direct(c)
      const tiers: [string, Answer][] = [['front', await http(`http://${front.addresses[0]!.replace('tcp://', '')}`, c)]]
      if (nginx !== null) tiers.push(['nginx', await http(nginx.url, c)])
      for (const [tier, got] of tiers) {
        assert.equal(got.status, want.status, `${tier} status`)
        for (const h of c.compare ?? []) assert.equal(got.headers[h], want.headers[h], `${tier} ${h}`)
        assert.deepEqual(c.view?.(got), c.view?.(want), `${tier} body`)
      }
    })
  }
})
