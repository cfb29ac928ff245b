/**
 * A real Hono app served unmodified by `ferry app` answers as Hono's own Node server
 * (@hono/node-server) does: same status, headers and bodies for the same requests.
 */
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { serve } from '@hono/node-server'
import type { Session } from '@ferry/protocol'
import app from '../fixtures/handlers/hono-app.ts'
import { type FerryProcess, startFerry } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

// Connection-level headers differ by transport (HTTP/1.1 server vs ferry) and are not the app's.
const TRANSPORT = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

interface Case {
  method: string
  path: string
  headers?: [string, string][]
  body?: string
}

const CASES: Case[] = [
  { method: 'GET', path: '/' },
  { method: 'HEAD', path: '/' },
  { method: 'GET', path: '/api/users/42?q=hi&tag=a&tag=b' },
  { method: 'GET', path: '/api/users/42', headers: [['origin', 'https://example.test']] },
  { method: 'OPTIONS', path: '/api/users', headers: [['origin', 'https://example.test'], ['access-control-request-method', 'POST']] },
  { method: 'POST', path: '/api/users', headers: [['content-type', 'application/json']], body: '{"name":"ada lovelace"}' },
  { method: 'DELETE', path: '/api/users/7' },
  { method: 'DELETE', path: '/api/users/abc' },
  { method: 'GET', path: '/posts/2024/hello-world' },
  { method: 'GET', path: '/admin/stats' },
  { method: 'GET', path: '/admin/stats', headers: [['authorization', 'Bearer letmein']] },
  { method: 'GET', path: '/redirect' },
  { method: 'PUT', path: '/echo', headers: [['content-type', 'text/plain']], body: 'héllo wörld' },
  { method: 'GET', path: '/stream' },
  { method: 'GET', path: '/cookie' },
  { method: 'GET', path: '/error' },
  { method: 'GET', path: '/nowhere' }
]

interface Answer {
  status: number
  headers: [string, string][]
  body: string
}

function normalize (pairs: [string, string][]): [string, string][] {
  return pairs.filter(([k]) => !TRANSPORT.has(k)).map(([k, v]) => [k.toLowerCase(), v] as [string, string]).sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]))
}

let hono: ReturnType<typeof serve>
let honoUrl: string
let ferry: FerryProcess
let session: Session

before(async () => {
  hono = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
  await new Promise<void>((resolve) => hono.once('listening', resolve))
  honoUrl = `http://127.0.0.1:${(hono.address() as AddressInfo).port}`
  ferry = await startFerry(['app', 'test/fixtures/handlers/hono-app.ts', '--listen', 'tcp://127.0.0.1:0', '--threads', '1'])
  session = await connect(ferry.addresses[0]!)
})

after(async () => {
  session.destroy()
  await ferry.stop()
  await new Promise<void>((resolve) => hono.close(() => resolve()))
})

async function viaHono (c: Case): Promise<Answer> {
  const { request: undiciRequest } = await import('undici')
  const res = await undiciRequest(`${honoUrl}${c.path}`, { method: c.method as 'GET', headers: Object.fromEntries(c.headers ?? []), body: c.body })
  const headers: [string, string][] = []
  for (const [k, v] of Object.entries(res.headers)) {
    if (Array.isArray(v)) for (const x of v) headers.push([k, x])
    else if (v !== undefined) headers.push([k, v])
  }
  return { status: res.statusCode, headers: normalize(headers), body: await res.body.text() }
}

async function viaFerry (c: Case): Promise<Answer> {
  const flat = (c.headers ?? []).flat()
  const r = await request(session, head(c.path, { method: c.method, headers: ['host', 'test.local', ...flat], authority: `127.0.0.1:${new URL(honoUrl).port}` }), c.body)
  const pairs: [string, string][] = []
  for (let i = 0; i < r.headers.length; i += 2) pairs.push([r.headers[i]!, r.headers[i + 1]!])
  // an HTTP/1.1 server states the length of a body it knows (an empty one goes out chunked
  // there, a transport detail); the front writes content-length from bodyLength the same way
  if (!pairs.some(([k]) => k === 'content-length') && r.head.bodyLength > 0 && c.method !== 'HEAD') {
    pairs.push(['content-length', String(r.head.bodyLength)])
  }
  return { status: r.status, headers: normalize(pairs), body: r.body.toString() }
}

for (const c of CASES) {
  test(`${c.method} ${c.path}${c.headers ? ` (${c.headers.map(([k]) => k).join(', ')})` : ''}`, async () => {
    const [direct, bridged] = await Promise.all([viaHono(c), viaFerry(c)])
    assert.equal(bridged.status, direct.status)
    assert.equal(bridged.body, direct.body)
    assert.deepEqual(bridged.headers, direct.headers)
  })
}
