/**
 * Real nginx (Debian's) with `uwsgi_pass` to `ferry app`, over unix and tcp: the same
 * requests through nginx give the same answers as straight to the app-server over ferry native.
 * Skips when nginx is not installed.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Session } from '@ferry/protocol'
import { request as undiciRequest } from 'undici'
import { connect, head, request } from '../app-server/client.ts'
import { type NginxInstance, nginxMissing, startNginx } from '../helpers/nginx.ts'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

interface Case {
  name: string
  method: string
  path: string
  headers?: [string, string][]
  body?: Buffer
}

const big = Buffer.alloc(1 << 20)
for (let i = 0; i < big.length; i++) big[i] = (i * 13) & 0xff

const CASES: Case[] = [
  { name: 'text GET', method: 'GET', path: '/text' },
  { name: 'POST text', method: 'POST', path: '/text', headers: [['content-type', 'text/plain']], body: Buffer.from('héllo from nginx') },
  { name: 'POST json', method: 'POST', path: '/json', headers: [['content-type', 'application/json']], body: Buffer.from('{"a":[1,"x"]}') },
  { name: 'UTF-8 path', method: 'GET', path: '/utf8/h%C3%A9llo' },
  { name: 'repeated response headers', method: 'GET', path: '/headers' },
  { name: 'HEAD', method: 'HEAD', path: '/headers' },
  { name: 'bytes', method: 'GET', path: '/bytes' },
  { name: 'empty 204', method: 'GET', path: '/empty' },
  { name: 'streamed SSE', method: 'GET', path: '/sse?n=4' },
  { name: '1 MiB upload hashed', method: 'POST', path: '/sha', body: big },
  { name: '1 MiB echo', method: 'POST', path: '/echo', body: big },
  { name: '2 MiB download', method: 'GET', path: '/download?mib=2' },
  { name: '404', method: 'GET', path: '/nope' },
  { name: 'handler throws', method: 'GET', path: '/throw' }
]

interface Answer { status: number, body: Buffer, contentType: string | undefined, setCookie: string[] }

const skip = nginxMissing()
if (skip !== undefined) console.log(`# skip: ${skip}`)

describe('nginx uwsgi_pass → ferry app', { skip }, () => {
  let app: FerryProcess
  let native: Session
  const nginx: Record<string, NginxInstance> = {}
  const tmp = tempDir()
  const hooks: (() => unknown)[] = []
  const t = { after: (fn: () => unknown) => { hooks.push(fn) } }

  before(async () => {
    const sock = join(tmp.dir, 'app.sock')
    app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', `unix:${sock}`, '--listen', 'tcp://127.0.0.1:0', '--threads', '2'])
    native = await connect(app.addresses[1]!)
    const tcp = app.addresses[1]!.replace('tcp://', '')
    nginx.unix = await startNginx(t, { location: `uwsgi_pass unix:${sock}; include /etc/nginx/uwsgi_params; uwsgi_buffering off; client_max_body_size 10m;` })
    nginx.tcp = await startNginx(t, { location: `uwsgi_pass ${tcp}; include /etc/nginx/uwsgi_params; client_max_body_size 10m;` })
  })
  after(async () => {
    native?.destroy()
    for (const h of hooks.reverse()) await h()
    await app?.stop()
    tmp.cleanup()
  })

  async function direct (c: Case): Promise<Answer> {
    const r = await request(native, head(c.path, { method: c.method, headers: (c.headers ?? []).flat() }), c.body)
    const all = (n: string): string[] => r.headers.filter((_, i) => i % 2 === 1 && r.headers[i - 1] === n)
    return { status: r.status, body: r.body, contentType: r.get('content-type'), setCookie: all('set-cookie') }
  }

  async function viaNginx (n: NginxInstance, c: Case): Promise<Answer> {
    const res = await undiciRequest(`${n.url}${c.path}`, { method: c.method as 'GET', headers: Object.fromEntries(c.headers ?? []), body: c.body })
    const body = Buffer.from(await res.body.arrayBuffer())
    const sc = res.headers['set-cookie']
    return {
      status: res.statusCode,
      body,
      contentType: res.headers['content-type'] as string | undefined,
      setCookie: sc === undefined ? [] : Array.isArray(sc) ? sc : [sc]
    }
  }

  for (const kind of ['unix', 'tcp']) {
    for (const c of CASES) {
      test(`${kind}: ${c.name}`, async () => {
        const [a, b] = await Promise.all([direct(c), viaNginx(nginx[kind]!, c)])
        assert.equal(b.status, a.status)
        assert.equal(b.contentType, a.contentType)
        assert.deepEqual(b.setCookie, a.setCookie)
        if (c.path === '/throw') {
          // same answer, different request ids (nginx's request vs the native one)
          assert.equal(b.body.toString().replace(/request id [^)]+/, ''), a.body.toString().replace(/request id [^)]+/, ''))
        } else {
          assert.ok(b.body.equals(a.body), `${kind} ${c.name}: ${b.body.length} vs ${a.body.length} bytes`)
        }
      })
    }
  }

  test('nginx logged no upstream errors', () => {
    for (const n of Object.values(nginx)) assert.doesNotMatch(n.stderr(), /upstream prematurely closed|recv\(\) failed|reset by peer/)
  })
})
