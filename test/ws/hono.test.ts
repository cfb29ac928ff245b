/**
 * A plain Hono app with a WebSocket route written as on Deno/Bun (`upgradeWebSocket` from
 * '@ferry/app-server/hono') served by `ferry app` behind `ferry front`: the normal routes
 * answer, the socket says hello on open, echoes text and binary, and close codes travel both
 * ways (the client's reaches the route's onClose, the route's reaches the client).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import WebSocket from 'ws'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

const FIXTURE = new URL('./fixtures/hono-ws-app.ts', import.meta.url).pathname

interface Received { data: Buffer, isBinary: boolean }
interface Closed { code: number, reason: string }

/** A client socket whose messages and close are queued for the test to take in order. */
class Client {
  readonly ws: WebSocket
  readonly #messages: Received[] = []
  readonly #waiters: ((m: Received) => void)[] = []
  readonly closed: Promise<Closed>
  readonly opened: Promise<void>

  constructor (url: string, protocols?: string[]) {
    this.ws = new WebSocket(url, protocols)
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      const m = { data, isBinary }
      const w = this.#waiters.shift()
      if (w !== undefined) w(m)
      else this.#messages.push(m)
    })
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
    })
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))
    })
  }

  next (ms = 5000): Promise<Received> {
    const m = this.#messages.shift()
    if (m !== undefined) return Promise.resolve(m)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms)
      this.#waiters.push((msg) => { clearTimeout(timer); resolve(msg) })
    })
  }
}

describe('a Hono app with a WebSocket route through ferry front → ferry app', () => {
  const tmp = tempDir('ferry-hono-ws-')
  let app: FerryProcess
  let front: FerryProcess
  let host: string
  const clients: Client[] = []

  const connect = async (path: string, protocols?: string[]): Promise<Client> => {
    const c = new Client(`ws://${host}${path}`, protocols)
    clients.push(c)
    await c.opened
    return c
  }

  /** The close the route recorded for the socket opened with ?name=`name`. */
  const closeOf = async (name: string): Promise<{ name: string, code: number, reason: string, wasClean: boolean }> => {
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`http://${host}/api/closes`)
      const body = await res.json() as { closes: { name: string, code: number, reason: string, wasClean: boolean }[] }
      const found = body.closes.find((c) => c.name === name)
      if (found !== undefined) return found
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`the route recorded no close for ${name}`)
  }

  before(async () => {
    const sock = join(tmp.dir, 'app.sock')
    app = await startFerry(['app', FIXTURE, '--listen', `unix:${sock}`, '--threads', '1'])
    front = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `unix:${sock}`])
    host = front.addresses[0]!.replace('tcp://', '')
  })

  after(async () => {
    for (const c of clients) c.ws.terminate()
    await front?.stop()
    await app?.stop()
    tmp.cleanup()
  })

  test('the normal routes answer beside the WebSocket route', async () => {
    const text = await fetch(`http://${host}/`)
    assert.equal(text.status, 200)
    // c.text() without status or headers is Hono's `new Response(text)`: the Fetch default type
    assert.equal(text.headers.get('content-type'), 'text/plain;charset=UTF-8')
    assert.equal(await text.text(), 'hello from hono')
    const json = await fetch(`http://${host}/api/closes`)
    assert.equal(json.status, 200)
    assert.equal(json.headers.get('content-type'), 'application/json')
    assert.deepEqual(await json.json(), { closes: [] })
  })

  test('a GET to the WebSocket route without an upgrade falls through to Hono\'s 404', async () => {
    const res = await fetch(`http://${host}/ws`)
    assert.equal(res.status, 404)
    assert.equal(await res.text(), '404 Not Found')
  })

  test('hello on open, text and binary echo, client close code reaches onClose', async () => {
    const c = await connect('/ws?name=echo')
    const hello = await c.next()
    assert.equal(hello.isBinary, false)
    assert.equal(hello.data.toString(), 'hello')

    c.ws.send('ping pong')
    const text = await c.next()
    assert.equal(text.isBinary, false)
    assert.equal(text.data.toString(), 'echo: ping pong')

    const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x80])
    c.ws.send(bytes)
    const bin = await c.next()
    assert.equal(bin.isBinary, true)
    assert.deepEqual(bin.data, Buffer.concat([Buffer.from('echo: '), bytes]))

    const big = Buffer.alloc(70000, 0x61)
    c.ws.send(big)
    const bigEcho = await c.next()
    assert.equal(bigEcho.isBinary, true)
    assert.deepEqual(bigEcho.data, Buffer.concat([Buffer.from('echo: '), big]))

    c.ws.close(4100, 'client leaves')
    assert.deepEqual(await c.closed, { code: 4100, reason: 'client leaves' })
    assert.deepEqual(await closeOf('echo'), { name: 'echo', code: 4100, reason: 'client leaves', wasClean: true })
  })

  test('the route\'s close (4002) reaches the client and its own onClose', async () => {
    const c = await connect('/ws?name=bye')
    assert.equal((await c.next()).data.toString(), 'hello')
    c.ws.send('bye')
    assert.deepEqual(await c.closed, { code: 4002, reason: 'server says bye' })
    assert.deepEqual(await closeOf('bye'), { name: 'bye', code: 4002, reason: 'server says bye', wasClean: true })
  })

  test('offered subprotocols: the helper selects the first, as Hono\'s Deno adapter does', async () => {
    const c = await connect('/ws?name=proto', ['chat.v2', 'chat.v1'])
    assert.equal(c.ws.protocol, 'chat.v2')
    assert.equal((await c.next()).data.toString(), 'hello')
    c.ws.close(1000)
    assert.equal((await c.closed).code, 1000)
    assert.equal((await closeOf('proto')).code, 1000)
  })

  test('a client that vanishes without a close frame shows in onClose as 1006, not clean', async () => {
    const c = await connect('/ws?name=vanish')
    assert.equal((await c.next()).data.toString(), 'hello')
    c.ws.terminate()
    assert.deepEqual(await closeOf('vanish'), { name: 'vanish', code: 1006, reason: '', wasClean: false })
  })
})
