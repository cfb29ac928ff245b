/**
 * Security of the link between tiers (issue 6): the shared secret (HMAC challenge-response
 * in HELLO, protocol.md §6.1) between real `ferry front` and `ferry app` processes, and the
 * uwsgi listener's client allow-list.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { emptyRequestHead, encodeUwsgiRequest, parseAddress } from '@ferry/protocol'
import { type FerryProcess, fileScope } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const SECRET = 's3cret-shared-between-tiers'
const { dir, start } = fileScope('ferry-security-')

async function get (front: FerryProcess, path: string): Promise<{ status: number, body: string }> {
  const res = await fetch(`${front.addresses[0]!.replace('tcp://', 'http://')}${path}`)
  return { status: res.status, body: await res.text() }
}

describe('shared secret between front and app (FERRY_APP_AUTH / FERRY_FRONT_AUTH)', () => {
  test('the same secret on both tiers: requests are served', async () => {
    const app = await start(['app', HANDLER, '--listen', `unix:${join(dir, 'ok.sock')}`, '--threads', '1'], { FERRY_APP_AUTH: SECRET })
    const front = await start(['front', '--listen', '127.0.0.1:0', '--upstream', app.addresses[0]!, '--no-access-log'], { FERRY_FRONT_AUTH: SECRET })
    const r = await get(front, '/text')
    assert.equal(r.status, 200)
  })

  for (const [name, frontSecret] of [['a wrong secret', 'not-the-secret'], ['no secret', undefined]] as const) {
    test(`${name} at the front: the app refuses the connection (FERRY_ERR_AUTH logged), the client gets 502/503 with a request id`, async () => {
      const app = await start(['app', HANDLER, '--listen', `unix:${join(dir, `${frontSecret ?? 'none'}.sock`)}`, '--threads', '1'], { FERRY_APP_AUTH: SECRET })
      const env: NodeJS.ProcessEnv = frontSecret === undefined ? {} : { FERRY_FRONT_AUTH: frontSecret }
      const front = await start(['front', '--listen', '127.0.0.1:0', '--upstream', app.addresses[0]!, '--no-access-log', '--connect-timeout', '1s'], env)
      const res = await fetch(`${front.addresses[0]!.replace('tcp://', 'http://')}/text`)
      await res.arrayBuffer()
      assert.ok(res.status === 502 || res.status === 503, `status ${res.status}`)
      assert.ok(res.headers.get('x-request-id'), 'the error answer carries the request id')
      const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_AUTH')
      assert.equal(line.msg, 'native connection error')
    })
  }
})

function uwsgiExchange (address: string): Promise<{ bytes: Buffer, error: string | null }> {
  const a = parseAddress(address)
  const socket = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host)
  return new Promise((resolve) => {
    const parts: Buffer[] = []
    let error: string | null = null
    socket.on('data', (c) => parts.push(c))
    socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
    socket.on('close', () => resolve({ bytes: Buffer.concat(parts), error }))
    socket.write(encodeUwsgiRequest({ ...emptyRequestHead(), path: '/text', authority: 'x' }))
  })
}

describe('uwsgi allow-list (--uwsgi-allow; uwsgi has no authentication)', () => {
  test('by default loopback peers may speak uwsgi over tcp', async () => {
    const app = await start(['app', HANDLER, '--listen', '127.0.0.1:0', '--threads', '1'])
    const r = await uwsgiExchange(app.addresses[0]!)
    assert.match(r.bytes.toString('latin1'), /^HTTP\/1\.1 200 /)
  })

  test('a tcp peer not in the list is closed without an answer and logged; unix and native still work', async () => {
    const app = await start(['app', HANDLER, '--listen', '127.0.0.1:0', '--listen', `unix:${join(dir, 'u.sock')}`, '--threads', '1', '--uwsgi-allow', '10.9.8.7'])
    const refused = await uwsgiExchange(app.addresses[0]!)
    assert.equal(refused.bytes.length, 0, 'no byte of an answer')
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_UWSGI_REFUSED')
    assert.match(String(line.remoteAddress), /127\.0\.0\.1/)
    const viaUnix = await uwsgiExchange(app.addresses[1]!)
    assert.match(viaUnix.bytes.toString('latin1'), /^HTTP\/1\.1 200 /, 'unix sockets are not subject to the list')
    const front = await start(['front', '--listen', '127.0.0.1:0', '--upstream', app.addresses[0]!, '--no-access-log'])
    assert.equal((await get(front, '/text')).status, 200, 'the native codec on the same tcp listener is unaffected')
  })
})
