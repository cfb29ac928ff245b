/**
 * Flow control over real sockets: a receiver that does not consume stops the sender at
 * exactly the window (stream and connection); consume() resumes it; closing a stream gives
 * its unconsumed connection credit back. "Exactly" is checked after a PING round trip: frames
 * are ordered on the connection, so once the ACK is back the receiver has processed
 * everything the sender could send before it.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ResetCode, type Session, type Stream } from '@ferry/protocol'
import { getHead, sessionPair } from '../helpers/fixtures-native.ts'

const T = { timeout: 15000 }

/** Resolves once cond() holds (checked every turn); a guard turns a hang into a failure. */
function until (cond: () => boolean, what = 'condition'): Promise<void> {
  const give = Date.now() + 10000
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (cond()) resolve()
      else if (Date.now() > give) reject(new Error(`${what} not reached in 10 s`))
      else setImmediate(check)
    }
    check()
  })
}

interface Received {
  s: Stream
  chunks: Buffer[]
  ended: boolean
  /** consume() each chunk a turn after it arrives (a reader that keeps up) */
  keepUp: boolean
}

/**
 * The server's next stream, with its callbacks set inside the 'stream' event (DATA in the
 * same socket chunk as the HEADERS is delivered before any await resumes).
 */
function nextStream (server: Session, manual: boolean): Promise<Received> {
  return new Promise((resolve) => server.once('stream', (s: Stream) => {
    s.manualConsume = manual
    const r: Received = { s, chunks: [], ended: false, keepUp: false }
    s.onData = (c) => {
      r.chunks.push(Buffer.from(c))
      if (r.keepUp) setImmediate(() => s.consume(c.length))
    }
    s.onEnd = () => { r.ended = true }
    resolve(r)
  }))
}

function pattern (n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff
  return b
}

describe('flow control', () => {
  test('request body: the sender stops at exactly the stream window; consume() resumes it', T, async (t) => {
    const { client, server } = await sessionPair(t, { limits: { initialWindow: 1024 } })
    const got = nextStream(server, true)
    const body = pattern(5000)
    const cs = client.request(getHead('/up', { method: 'POST', bodyLength: body.length }), false)
    let drained = 0
    cs.onDrain = () => { drained++ }
    assert.equal(cs.write(body), false, 'write() says stop: not enough credit')
    const r = await got
    const ss = r.s

    await until(() => ss.bytesReceived >= 1024)
    await client.ping()
    assert.equal(ss.bytesReceived, 1024, 'exactly the initial window')

    // below half the window: credit is held back (no WINDOW_UPDATE yet)
    ss.consume(511)
    await server.ping()
    await client.ping()
    assert.equal(ss.bytesReceived, 1024)

    // reaching half the window sends WINDOW_UPDATE(512): exactly 512 more arrive
    ss.consume(1)
    await until(() => ss.bytesReceived >= 1536)
    await server.ping()
    await client.ping()
    assert.equal(ss.bytesReceived, 1536)
    assert.equal(drained, 0)

    // consume as bytes arrive: the rest flows, the sender gets onDrain, the body is exact
    r.keepUp = true
    ss.consume(ss.bytesReceived - 512)
    await until(() => drained > 0)
    cs.end()
    await until(() => r.ended)
    assert.ok(Buffer.concat(r.chunks).equals(body))
    assert.equal(drained, 1)
  })

  test('connection window: credit returns on receipt, so a stream that does not consume holds only its own window', T, async (t) => {
    const { client, server } = await sessionPair(t, { limits: { initialWindow: 1024, connectionWindow: 1024 } })
    const streams: Stream[] = []
    server.on('stream', (s: Stream) => {
      s.manualConsume = true
      streams.push(s)
    })
    const a = client.request(getHead('/a', { method: 'POST', bodyLength: 3000 }), false)
    const b = client.request(getHead('/b', { method: 'POST', bodyLength: 3000 }), false)
    a.write(pattern(3000))
    await until(() => streams.length === 2 && streams[0]!.bytesReceived === 1024)
    // a holds 1024 bytes unconsumed (its whole stream window, and the whole connection window
    // as first sent): b still gets all of its body
    b.write(pattern(3000))
    const sb = streams[1]!
    sb.manualConsume = false
    sb.consume(sb.bytesReceived)
    const bDone = new Promise<void>((resolve) => { sb.onEnd = resolve })
    b.end()
    await bDone
    assert.equal(sb.bytesReceived, 3000)
    await client.ping()
    assert.equal(streams[0]!.bytesReceived, 1024, 'a stopped at its stream window')
    const sa = streams[0]!
    const aDone = new Promise<void>((resolve) => { sa.onEnd = resolve })
    sa.manualConsume = false
    sa.onData = (c) => { sa.consume(c.length) }
    sa.consume(sa.bytesReceived)
    a.end()
    await aDone
    assert.equal(sa.bytesReceived, 3000)
  })

  test('response body: a client that does not consume stops the server at the window', T, async (t) => {
    const { client, server } = await sessionPair(t, {}, { limits: { initialWindow: 1024 } })
    let serverStream: Stream | null = null
    let writeResult: boolean | null = null
    let drained = false
    const body = pattern(10000)
    server.on('stream', (s: Stream) => {
      serverStream = s
      s.onDrain = () => { drained = true }
      s.respond({ status: 200, headers: [], bodyLength: body.length }, false)
      writeResult = s.write(body)
    })
    const cs = client.request(getHead('/down'), true)
    cs.manualConsume = true
    const chunks: Buffer[] = []
    let ended = false
    cs.onData = (c) => { chunks.push(Buffer.from(c)) }
    cs.onEnd = () => { ended = true }
    await until(() => cs.bytesReceived >= 1024)
    await server.ping()
    assert.equal(cs.bytesReceived, 1024)
    assert.equal(writeResult, false)
    assert.equal(drained, false)
    assert.ok(serverStream !== null)
    cs.onData = (c) => {
      chunks.push(Buffer.from(c))
      cs.consume(c.length)
    }
    cs.consume(1024)
    await until(() => drained)
    ;(serverStream as Stream).end()
    await until(() => ended)
    assert.ok(Buffer.concat(chunks).equals(body))
  })

  test('a stream holding unconsumed bytes does not hold up the next stream\'s DATA', T, async (t) => {
    const { client, server } = await sessionPair(t, { limits: { initialWindow: 1024, connectionWindow: 1024 } })
    const streams: Stream[] = []
    server.on('stream', (s: Stream) => {
      s.manualConsume = s.head!.path === '/hog'
      streams.push(s)
    })
    const hog = client.request(getHead('/hog', { method: 'POST', bodyLength: -1 }), false)
    hog.write(pattern(1024))
    await until(() => streams.length === 1 && streams[0]!.bytesReceived === 1024)
    // the hog's 1024 unconsumed bytes filled the connection window as first sent, but their
    // connection credit went back on receipt: a second stream's DATA flows at once
    let otherEnded = false
    server.on('stream', (s: Stream) => { if (s.head!.path === '/other') s.onEnd = () => { otherEnded = true } })
    const other = client.request(getHead('/other', { method: 'POST', bodyLength: 100 }), false)
    other.end(pattern(100))
    await until(() => otherEnded)
    assert.equal(streams[1]!.bytesReceived, 100)
    assert.equal(streams[0]!.bytesReceived, 1024, 'the hog still holds its stream window')
    // resetting the hog is clean: nothing owed, the connection goes on
    streams[0]!.reset(ResetCode.CANCEL)
    assert.equal(typeof await client.ping(), 'number')
  })

  test('small windows (1 KiB) and small frames: 200 KiB each way in many WINDOW_UPDATEs', T, async (t) => {
    const small = { initialWindow: 1024, connectionWindow: 1024, maxFramePayload: 1024 }
    const { client, server } = await sessionPair(t, { limits: small }, { limits: small })
    const body = pattern(200 * 1024)
    server.on('stream', (s: Stream) => {
      const chunks: Buffer[] = []
      s.onData = (c) => { chunks.push(Buffer.from(c)) }
      s.onEnd = () => {
        const got = Buffer.concat(chunks)
        s.respond({ status: got.equals(body) ? 200 : 500, headers: [], bodyLength: -1 }, false)
        s.end(got)
      }
    })
    const cs = client.request(getHead('/echo', { method: 'POST', bodyLength: body.length }), false)
    const chunks: Buffer[] = []
    let status = 0
    let maxChunk = 0
    const done = new Promise<void>((resolve, reject) => {
      cs.onResponse = (h) => { status = h.status }
      cs.onData = (c) => { maxChunk = Math.max(maxChunk, c.length); chunks.push(Buffer.from(c)) }
      cs.onEnd = resolve
      cs.onError = reject
    })
    cs.end(body)
    await done
    assert.equal(status, 200)
    assert.ok(Buffer.concat(chunks).equals(body))
    assert.ok(maxChunk <= 1024, 'DATA is split to the peer\'s maxFramePayload')
  })
})
