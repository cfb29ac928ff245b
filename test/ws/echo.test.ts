/**
 * WebSockets end to end (a `ws` client → ferry front → ferry app over unix): byte-exact echo
 * of text and binary messages up to the 16 MiB default limit (inclusive), fragmented client
 * messages, ping/pong answered by the handler's thread, close both ways with code and reason,
 * subprotocol selection and the app's extra 101 headers.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { type Client, connect, type Pair, startPair } from './helpers.ts'

const MiB16 = 16 * 1024 * 1024

describe('websocket echo through front and app', { timeout: 50000 }, () => {
  let pair: Pair & { stop (): Promise<void> }
  let base: string

  before(async () => {
    pair = await startPair()
    base = `ws://${pair.host}`
  })
  after(() => pair.stop())

  async function echo (c: Client, payload: Buffer | string): Promise<{ data: Buffer, isBinary: boolean }> {
    c.ws.send(payload, { binary: typeof payload !== 'string' })
    return c.next()
  }

  for (const size of [1, 64 * 1024, MiB16]) {
    test(`text message of ${size} bytes echoed byte for byte`, async () => {
      const c = await connect(`${base}/echo`)
      // a mix of 1-byte characters with a 2-byte one in the middle when there is room
      const text = size < 4 ? 'x'.repeat(size) : `${'a'.repeat(size / 2 - 1)}é${'z'.repeat(size / 2 - 1)}`
      assert.equal(Buffer.byteLength(text), size)
      const m = await echo(c, text)
      assert.equal(m.isBinary, false)
      assert.equal(m.data.length, size)
      assert.ok(m.data.equals(Buffer.from(text)), 'same bytes')
      c.ws.close(1000)
      assert.deepEqual(await c.closed, { code: 1000, reason: '' })
    })

    test(`binary message of ${size} bytes echoed byte for byte`, async () => {
      const c = await connect(`${base}/echo`)
      const bytes = randomBytes(size)
      const m = await echo(c, bytes)
      assert.equal(m.isBinary, true)
      assert.equal(m.data.length, size)
      assert.ok(m.data.equals(bytes), 'same bytes')
      c.ws.close(1000)
      assert.deepEqual(await c.closed, { code: 1000, reason: '' })
    })
  }

  test('a message one byte over the 16 MiB default limit closes the socket with 1009', async () => {
    const c = await connect(`${base}/echo`)
    c.ws.send(Buffer.alloc(MiB16 + 1))
    const closed = await c.closed
    assert.equal(closed.code, 1009)
  })

  test('a fragmented client message reaches the handler as one message', async () => {
    const c = await connect(`${base}/echo`)
    const parts = [Buffer.from('frag-one|'), randomBytes(70000), Buffer.from('|frag-three')]
    c.ws.send(parts[0]!, { binary: true, fin: false })
    c.ws.send(parts[1]!, { binary: true, fin: false })
    c.ws.send(parts[2]!, { binary: true, fin: true })
    c.ws.send('after', { fin: false })
    c.ws.send('-fragments', { fin: true })
    const m = await c.next()
    assert.equal(m.isBinary, true)
    assert.ok(m.data.equals(Buffer.concat(parts)), 'one message, the parts joined')
    const t = await c.next()
    assert.equal(t.isBinary, false)
    assert.equal(t.data.toString(), 'after-fragments')
    c.ws.close(1000)
    await c.closed
  })

  test("a client's ping is answered by the handler's thread with the same payload", async () => {
    const c = await connect(`${base}/echo`)
    // both recorded as ws emits them (one chunk may carry both frames: an awaited next()
    // would resume only after the pong handler ran)
    const events: string[] = []
    c.ws.on('message', (data: Buffer) => events.push(`message ${data.toString()}`))
    c.ws.on('pong', (data: Buffer) => events.push(`pong ${data.toString('hex')}`))
    const gotPong = new Promise<void>((resolve) => c.ws.once('pong', () => resolve()))
    // the thread is busy for 300 ms answering 'block 300': a pong from the front would come
    // first; the node's comes after 'unblocked', in stream order
    c.ws.send('block 300')
    const payload = Buffer.from('p1\x00\xff', 'latin1')
    c.ws.ping(payload)
    assert.equal((await c.next()).data.toString(), 'unblocked')
    await gotPong
    assert.deepEqual(events, ['message unblocked', `pong ${payload.toString('hex')}`])
    // one pong per ping: a second round trip sees no stray pong in between
    c.ws.send('marker')
    assert.equal((await c.next()).data.toString(), 'marker')
    assert.deepEqual(events, ['message unblocked', `pong ${payload.toString('hex')}`, 'message marker'])
    c.ws.close(1000)
    await c.closed
  })

  test('close from the client: the handler sees its code and reason', async () => {
    const id = `c${Date.now()}`
    const c = await connect(`${base}/record?id=${id}`)
    c.ws.send('hi')
    assert.equal((await c.next()).data.toString(), 'hi')
    c.ws.close(4321, 'client says bye')
    // the front's ws server answers the close handshake itself, echoing code and reason
    assert.deepEqual(await c.closed, { code: 4321, reason: 'client says bye' })
    let seen: unknown[] = []
    for (let i = 0; i < 100 && seen.length === 0; i++) {
      seen = await (await fetch(`http://${pair.host}/closes?id=${id}`)).json() as unknown[]
      if (seen.length === 0) await new Promise((r) => setTimeout(r, 20))
    }
    assert.deepEqual(seen, [{ code: 4321, reason: 'client says bye', wasClean: true }])
  })

  test('close from the server: the client sees 4001 "as you wish"', async () => {
    const c = await connect(`${base}/echo`)
    c.ws.send('close-me')
    assert.deepEqual(await c.closed, { code: 4001, reason: 'as you wish' })
  })

  test('subprotocol: the handler picks the last offered one and the client gets it', async () => {
    const c = await connect(`${base}/proto`, { protocols: ['chat.v1', 'chat.v2', 'chat.v3'] })
    assert.equal(c.ws.protocol, 'chat.v3')
    assert.equal(c.headers['sec-websocket-protocol'], 'chat.v3')
    c.ws.send('over proto')
    assert.equal((await c.next()).data.toString(), 'over proto')
    c.ws.close(1000)
    await c.closed
  })

  test("the app's extra 101 headers reach the client (x-thread), no subprotocol when none chosen", async () => {
    const c = await connect(`${base}/echo`)
    // --threads 1: the one worker thread is thread 1
    assert.equal(c.headers['x-thread'], '1')
    assert.equal(c.headers['sec-websocket-protocol'], undefined)
    assert.equal(c.headers.upgrade, 'websocket')
    c.ws.close(1000)
    await c.closed
  })

  test('a socket the handler closes on open: 1000 "bye"', async () => {
    const c = await connect(`${base}/close-on-open`)
    assert.deepEqual(await c.closed, { code: 1000, reason: 'bye' })
  })
})
