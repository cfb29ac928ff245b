/**
 * Session over real unix socket pairs: HELLO exchange and limits, requests with and without
 * bodies, 1,000 concurrent streams on one connection, RESET of one stream, GOAWAY drain
 * (FIN, not RST), PING. Flow control: session-flow.test.ts; malformed peers: session-malformed.test.ts.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DEFAULT_LIMITS, FerryError, Flags, FrameType, PREFACE, PROTOCOL_VERSION, type ResponseHead, ResetCode,
  Session, type Stream
} from '@ferry/protocol'
import {
  decodeGoaway, decodeHello, decodeReset, getHead, hex, once, RawPeer, sessionPair, sessionWithRawPeer, socketPair, unhex
} from '../helpers/fixtures-native.ts'

const T = { timeout: 15000 }

interface Answer { head: ResponseHead, endStream: boolean, body: Buffer, ended: boolean, error: FerryError | null }

/** Collects a client stream's response; resolves on end or error. */
function collect (s: Stream): Promise<Answer> {
  return new Promise((resolve) => {
    const a: Answer = { head: { status: 0, headers: [], bodyLength: 0 }, endStream: false, body: Buffer.alloc(0), ended: false, error: null }
    const chunks: Buffer[] = []
    s.onResponse = (head, endStream) => { a.head = head; a.endStream = endStream }
    s.onData = (c) => { chunks.push(Buffer.from(c)) }
    s.onEnd = () => { a.ended = true; a.body = Buffer.concat(chunks); resolve(a) }
    s.onError = (err) => { a.error = err; a.body = Buffer.concat(chunks); resolve(a) }
  })
}

/** Server side: collects a request body, then calls done(body). */
function readBody (s: Stream, done: (body: Buffer) => void): void {
  const chunks: Buffer[] = []
  s.onData = (c) => { chunks.push(Buffer.from(c)) }
  s.onEnd = () => done(Buffer.concat(chunks))
}

describe('HELLO', () => {
  test('each side learns the other\'s limits; defaults fill the gaps', T, async (t) => {
    const serverLimits = { maxFramePayload: 16384, maxHeadBytes: 8192, maxConcurrentStreams: 10, initialWindow: 65536, connectionWindow: 1 << 20 }
    const { client, server } = await sessionPair(t, { limits: serverLimits, agent: 'srv' }, { limits: { maxFramePayload: 32768 }, agent: 'cli' })
    assert.deepEqual(client.peerLimits, serverLimits)
    assert.deepEqual(server.localLimits, serverLimits)
    assert.deepEqual(server.peerLimits, { ...DEFAULT_LIMITS, maxFramePayload: 32768 })
    assert.equal(client.ready, true)
    assert.equal(server.ready, true)
  })

  test('a client sends the preface then its HELLO; the server answers with its own HELLO', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client', { agent: 'ferry-test/1', limits: { maxConcurrentStreams: 7 } })
    const hello = await peer.waitType(FrameType.HELLO)
    assert.equal(hex(Buffer.from(peer.preface)), hex(PREFACE))
    assert.equal(peer.frames[0], hello, 'HELLO is the first frame after the preface')
    assert.equal(hello.flags, 0)
    assert.equal(hello.streamId, 0)
    const m = decodeHello(hello.payload)
    assert.equal(m.version, PROTOCOL_VERSION)
    assert.equal(m.nonce.length, 0, 'no secret, no nonce (session-auth.test.ts covers the handshake)')
    assert.equal(m.proof.length, 0)
    assert.equal(m.agent, 'ferry-test/1')
    assert.equal(m.limits?.maxConcurrentStreams, 7)
    assert.equal(m.limits?.maxFramePayload, DEFAULT_LIMITS.maxFramePayload)
    assert.equal(session.ready, false, 'not ready before the peer HELLO')
    peer.hello('server', { maxConcurrentStreams: 3 })
    await once(session, 'ready')
    assert.equal(session.peerLimits.maxConcurrentStreams, 3)
  })

  test('a server never sends the preface, and answers the client\'s HELLO', T, async (t) => {
    const { peer } = await sessionWithRawPeer(t, 'server', {})
    peer.hello('client')
    const hello = await peer.waitType(FrameType.HELLO)
    assert.equal(decodeHello(hello.payload).proof.length, 0)
    assert.equal(peer.frames[0]!.type, FrameType.HELLO, 'the first bytes from a server are a HELLO frame')
  })

  test('initialData: bytes the listener already read are processed first', T, async (t) => {
    const [cs, ss] = await socketPair(t)
    const peer = new RawPeer(cs)
    const first = await new Promise<Buffer>((resolve) => {
      ss.once('data', resolve)
      peer.hello('client')
    })
    const server = new Session(ss, { role: 'server', initialData: first })
    t.after(() => server.destroy())
    await once(server, 'ready')
    assert.equal(server.ready, true)
  })
})

describe('requests and responses', () => {
  test('GET without bodies: head delivered exactly, END_STREAM on HEADERS both ways', T, async (t) => {
    const { client, server } = await sessionPair(t)
    const head = getHead('/a/b?c=d', { requestId: 'req-1', remoteAddress: '10.0.0.9', remotePort: 4242, headers: ['accept', '*/*', 'x-a', '1', 'x-a', '2'] })
    server.on('stream', (s: Stream) => {
      assert.deepEqual(s.head, head)
      assert.equal(s.remoteEnded, true)
      s.respond({ status: 204, headers: ['x-done', 'yes'], bodyLength: 0 }, true)
    })
    const stream = client.request(head, true)
    assert.equal(stream.id, 1)
    const a = await collect(stream)
    assert.equal(a.error, null)
    assert.deepEqual(a.head, { status: 204, headers: ['x-done', 'yes'], bodyLength: 0 })
    assert.equal(a.endStream, true)
    assert.equal(a.body.length, 0)
    assert.equal(stream.closed, true)
    assert.equal(client.openStreams, 0)
    assert.equal(server.openStreams, 0)
    assert.equal(client.request(getHead('/2'), true).id, 3, 'client stream ids are odd and increasing')
  })

  test('POST with a declared body, echoed back as a streamed body in several writes', T, async (t) => {
    const { client, server } = await sessionPair(t)
    server.on('stream', (s: Stream) => {
      readBody(s, (body) => {
        s.respond({ status: 200, headers: ['content-type', 'application/octet-stream'], bodyLength: -1 }, false)
        s.write(body.subarray(0, 3))
        s.write(body.subarray(3))
        s.end(Buffer.from('!'))
      })
    })
    const stream = client.request(getHead('/echo', { method: 'POST', bodyLength: 11 }), false)
    const answer = collect(stream)
    stream.write(Buffer.from('hello'))
    stream.end(Buffer.from(' world'))
    const a = await answer
    assert.equal(a.error, null)
    assert.equal(a.body.toString(), 'hello world!')
    assert.equal(a.head.bodyLength, -1)
  })

  test('a 3 MiB body each way (beyond every window) arrives byte-exact', T, async (t) => {
    const { client, server } = await sessionPair(t)
    const big = Buffer.alloc(3 * 1024 * 1024)
    for (let i = 0; i < big.length; i += 4) big.writeUInt32BE(i, i)
    server.on('stream', (s: Stream) => {
      readBody(s, (body) => {
        assert.ok(body.equals(big))
        s.respond({ status: 200, headers: [], bodyLength: big.length }, false)
        s.end(big)
      })
    })
    const stream = client.request(getHead('/big', { method: 'PUT', bodyLength: big.length }), false)
    const answer = collect(stream)
    stream.end(big)
    const a = await answer
    assert.equal(a.error, null)
    assert.ok(a.body.equals(big))
  })

  test('1,000 concurrent streams on one connection, each answered with its own body', T, async (t) => {
    const { client, server } = await sessionPair(t)
    let peak = 0
    server.on('stream', (s: Stream) => {
      peak = Math.max(peak, server.openStreams)
      readBody(s, (body) => {
        const out = Buffer.from(`${s.head!.path}:${body.toString()}`)
        // answer in a later turn so that many streams are open at once
        setImmediate(() => {
          s.respond({ status: 200, headers: ['x-id', String(s.id)], bodyLength: out.length }, false)
          s.end(out)
        })
      })
    })
    const answers: Promise<Answer>[] = []
    for (let i = 0; i < 1000; i++) {
      const s = client.request(getHead(`/r/${i}`, { method: 'POST', bodyLength: -1 }), false)
      answers.push(collect(s))
      s.end(Buffer.from(`body-${i}`))
    }
    assert.equal(client.openStreams, 1000)
    const all = await Promise.all(answers)
    for (let i = 0; i < 1000; i++) {
      assert.equal(all[i]!.error, null)
      assert.equal(all[i]!.body.toString(), `/r/${i}:body-${i}`)
      assert.deepEqual(all[i]!.head.headers, ['x-id', String(2 * i + 1)])
    }
    assert.ok(peak > 100, `many streams were open at once on the server (peak ${peak})`)
    assert.equal(client.openStreams, 0)
    assert.equal(server.openStreams, 0)
  })

  test('a client cannot exceed the server\'s maxConcurrentStreams: FERRY_ERR_STREAM_LIMIT', T, async (t) => {
    const { client } = await sessionPair(t, { limits: { maxConcurrentStreams: 2 } })
    client.request(getHead('/1'), false)
    client.request(getHead('/2'), false)
    assert.throws(() => client.request(getHead('/3'), false), { code: 'FERRY_ERR_STREAM_LIMIT', statusCode: 503 })
  })

  test('a head larger than the peer\'s maxHeadBytes is refused before it is sent', T, async (t) => {
    const { client } = await sessionPair(t, { limits: { maxHeadBytes: 1024 } })
    assert.throws(() => client.request(getHead('/', { headers: ['x-big', 'v'.repeat(2000)] }), true), { code: 'FERRY_ERR_HEAD_TOO_LARGE', statusCode: 431 })
    assert.equal(client.openStreams, 0)
  })
})

describe('RESET', () => {
  test('the client resets one stream; the others finish intact', T, async (t) => {
    const { client, server } = await sessionPair(t)
    const serverErrors = new Map<number, FerryError>()
    const pending: Stream[] = []
    server.on('stream', (s: Stream) => {
      pending.push(s)
      s.onError = (err) => {
        serverErrors.set(s.id, err)
        // once stream 3 is reset, answer the others
        for (const p of pending) {
          if (p.closed) continue
          p.respond({ status: 200, headers: [], bodyLength: 2 }, false)
          p.end(Buffer.from('ok'))
        }
      }
    })
    const streams = [1, 2, 3].map(() => client.request(getHead('/x', { bodyLength: -1 }), false))
    const answers = streams.map(collect)
    await new Promise<void>((resolve) => { const check = (): void => { pending.length === 3 ? resolve() : setImmediate(check) }; check() })
    streams[1]!.reset(ResetCode.CANCEL, 'client went away')
    streams[0]!.end()
    streams[2]!.end()
    const a1 = await answers[0]!
    const a5 = await answers[2]!
    assert.equal(a1.error, null)
    assert.equal(a1.body.toString(), 'ok')
    assert.equal(a5.error, null)
    assert.equal(a5.body.toString(), 'ok')
    const err = serverErrors.get(3)
    assert.ok(err instanceof FerryError)
    assert.equal(err.code, 'FERRY_ERR_STREAM_RESET')
    assert.equal(err.resetCode, ResetCode.CANCEL)
    assert.equal(err.streamId, 3)
    assert.ok(err.message.includes('client went away'))
    assert.equal(serverErrors.size, 1)
    assert.equal(streams[1]!.closed, true)
    assert.equal(client.openStreams, 0)
    assert.equal(server.openStreams, 0)
  })

  test('the server resets a stream: the client gets FERRY_ERR_STREAM_RESET with the code', T, async (t) => {
    const { client, server } = await sessionPair(t)
    server.on('stream', (s: Stream) => {
      if (s.head!.path === '/bad') s.reset(ResetCode.OVERLOADED, 'busy')
      else s.respond({ status: 200, headers: [], bodyLength: 0 }, true)
    })
    const bad = collect(client.request(getHead('/bad'), true))
    const good = collect(client.request(getHead('/good'), true))
    const [b, g] = await Promise.all([bad, good])
    assert.equal(b.error?.code, 'FERRY_ERR_STREAM_RESET')
    assert.equal(b.error?.resetCode, ResetCode.OVERLOADED)
    assert.equal(g.error, null)
    assert.equal(g.head.status, 200)
  })

  test('RESET bytes on the wire: type 2, the stream id, protobuf {code, message}', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client')
    peer.hello('server')
    await once(session, 'ready')
    const s = session.request(getHead('/'), false)
    s.reset(ResetCode.TIMEOUT, 't')
    const r = await peer.waitType(FrameType.RESET, s.id)
    assert.equal(r.flags, 0)
    assert.equal(r.payload, '0806' + '120174')
    assert.deepEqual(decodeReset(r.payload), { code: ResetCode.TIMEOUT, message: 't' })
  })
})

describe('GOAWAY', () => {
  test('server drain: open streams finish, new requests throw FERRY_ERR_GOAWAY, the socket ends with FIN', T, async (t) => {
    const { client, server, clientSocket, serverSocket } = await sessionPair(t)
    const socketErrors: Error[] = []
    clientSocket.on('error', (e) => socketErrors.push(e))
    serverSocket.on('error', (e) => socketErrors.push(e))
    const clientEnded = once(clientSocket, 'end')
    const clientClosed = once<boolean>(clientSocket, 'close')
    const serverStreams: Stream[] = []
    server.on('stream', (s: Stream) => { serverStreams.push(s) })
    const a = collect(client.request(getHead('/1'), true))
    const b = collect(client.request(getHead('/2'), true))
    await new Promise<void>((resolve) => { const check = (): void => { serverStreams.length === 2 ? resolve() : setImmediate(check) }; check() })
    const goaways: { lastStreamId: number, code: number }[] = []
    const second = new Promise<void>((resolve) => client.on('goaway', (g) => { goaways.push(g); if (goaways.length === 2) resolve() }))
    server.goaway()
    assert.equal(server.goingAway, true)
    await second
    // two phases: "open no new streams" (largest id), then, after a PING round trip, the real last id
    assert.deepEqual(goaways.map((g) => [g.lastStreamId, g.code]), [[0x7fffffff, ResetCode.NO_ERROR], [3, ResetCode.NO_ERROR]])
    assert.throws(() => client.request(getHead('/3'), true), (err: unknown) => err instanceof FerryError && err.code === 'FERRY_ERR_GOAWAY' && err.statusCode === 503)
    for (const s of serverStreams) {
      s.respond({ status: 200, headers: [], bodyLength: 4 }, false)
      s.end(Buffer.from('done'))
    }
    const [ra, rb] = await Promise.all([a, b])
    assert.equal(ra.body.toString(), 'done')
    assert.equal(rb.body.toString(), 'done')
    await clientEnded
    const hadError = await clientClosed
    assert.equal(hadError, false)
    assert.deepEqual(socketErrors, [], 'no ECONNRESET: the connection ended with FIN')
  })

  test('client side: streams above last_stream_id fail with FERRY_ERR_GOAWAY (safe to retry), lower ones finish', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client')
    peer.hello('server')
    await once(session, 'ready')
    const s1 = session.request(getHead('/1'), true)
    const s3 = session.request(getHead('/3'), true)
    const a1 = collect(s1)
    const a3 = collect(s3)
    await peer.waitType(FrameType.HEADERS, 3)
    peer.sendFrame(FrameType.GOAWAY, 0, 0, Buffer.from('0801', 'hex')) // last_stream_id 1, code 0
    const r3 = await a3
    assert.equal(r3.error?.code, 'FERRY_ERR_GOAWAY')
    assert.equal(r3.error?.resetCode, ResetCode.REFUSED_STREAM)
    assert.equal(session.goingAway, true)
    assert.deepEqual(session.peerGoaway, { lastStreamId: 1, code: 0, message: '' })
    peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, Buffer.from('08c801', 'hex')) // status 200
    const r1 = await a1
    assert.equal(r1.error, null)
    assert.equal(r1.head.status, 200)
    // the last stream done, the client ends its side: FIN
    await new Promise<void>((resolve) => { const check = (): void => { peer.ended ? resolve() : setTimeout(check, 5) }; check() })
  })

  test('GOAWAY bytes on the wire: two phases; the final last_stream_id is the highest stream the server took', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'server')
    peer.hello('client')
    await once(session, 'ready')
    session.on('stream', () => {})
    peer.sendFrame(FrameType.HEADERS, 0, 5, Buffer.from('08011a012f', 'hex'))
    await once(session, 'stream')
    session.goaway(ResetCode.NO_ERROR, 'bye')
    const g1 = await peer.waitType(FrameType.GOAWAY)
    assert.equal(g1.streamId, 0)
    assert.equal(g1.payload, '08ffffffff07' + '1a03627965') // phase 1: last_stream_id 2^31-1, message "bye"
    // A request the client sent before it read the GOAWAY is still served…
    peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 7, Buffer.from('08011a012f', 'hex'))
    const ping = await peer.waitType(FrameType.PING)
    assert.equal(peer.frames.some((f) => f.type === FrameType.RESET), false)
    // …and once the PING is answered, the final GOAWAY names the highest stream taken.
    peer.sendFrame(FrameType.PING, Flags.ACK, 0, unhex(ping.payload))
    const g2 = await peer.waitFrame((f) => f.type === FrameType.GOAWAY && f !== g1)
    assert.equal(g2.payload, '0807' + '1a03627965') // last_stream_id 7, code 0 omitted, message "bye"
    assert.deepEqual(decodeGoaway(g2.payload), { lastStreamId: 7, code: 0, message: 'bye' })
    // a new stream after the final GOAWAY is refused with REFUSED_STREAM
    peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 9, Buffer.from('08011a012f', 'hex'))
    const r = await peer.waitType(FrameType.RESET, 9)
    assert.equal(decodeReset(r.payload).code, ResetCode.REFUSED_STREAM)
  })

  test('a peer GOAWAY with an error code closes the session: FERRY_ERR_PEER_GOAWAY', T, async (t) => {
    const { session, peer, errors } = await sessionWithRawPeer(t, 'client')
    peer.hello('server')
    await once(session, 'ready')
    const a = collect(session.request(getHead('/'), true))
    const closed = once(session, 'close')
    peer.sendFrame(FrameType.GOAWAY, 0, 0, Buffer.from('08011001', 'hex')) // last 1, code PROTOCOL_ERROR
    const r = await a
    assert.equal(r.error?.code, 'FERRY_ERR_SESSION_CLOSED')
    await closed
    assert.equal(session.closed, true)
    assert.deepEqual(errors, [], 'the peer\'s error is not ours: no \'error\' event')
  })
})

describe('PING', () => {
  test('ping() resolves with an RTT in ms, both directions', T, async (t) => {
    const { client, server } = await sessionPair(t)
    const rtt = await client.ping()
    assert.equal(typeof rtt, 'number')
    assert.ok(rtt >= 0)
    assert.ok((await server.ping()) >= 0)
    const many = await Promise.all([client.ping(), client.ping(), client.ping()])
    assert.equal(many.length, 3)
  })

  test('a PING is answered with ACK and the same 8 bytes', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'server')
    peer.hello('client')
    await once(session, 'ready')
    peer.ping(Buffer.from('deadbeefcafef00d', 'hex'))
    const ack = await peer.waitFrame((f) => f.type === FrameType.PING && f.flags === Flags.ACK)
    assert.equal(ack.payload, 'deadbeefcafef00d')
    assert.equal(ack.streamId, 0)
  })

  test('an unanswered ping rejects with FERRY_ERR_PING_TIMEOUT', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client', { pingTimeout: 100 })
    peer.hello('server')
    await once(session, 'ready')
    await assert.rejects(session.ping(), { code: 'FERRY_ERR_PING_TIMEOUT' })
  })

  test('pings in flight reject with FERRY_ERR_SESSION_CLOSED when the session closes', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client')
    peer.hello('server')
    await once(session, 'ready')
    const p = session.ping()
    session.destroy()
    await assert.rejects(p, { code: 'FERRY_ERR_SESSION_CLOSED' })
    await assert.rejects(session.ping(), { code: 'FERRY_ERR_SESSION_CLOSED' })
  })
})

describe('close', () => {
  test('the peer\'s socket closing fails every open stream with FERRY_ERR_SESSION_CLOSED', T, async (t) => {
    const { session, peer } = await sessionWithRawPeer(t, 'client')
    peer.hello('server')
    await once(session, 'ready')
    const answers = [1, 2, 3].map(() => collect(session.request(getHead('/'), true)))
    await peer.waitType(FrameType.HEADERS, 5)
    peer.socket.destroy()
    for (const a of await Promise.all(answers)) assert.equal(a.error?.code, 'FERRY_ERR_SESSION_CLOSED')
    assert.equal(session.openStreams, 0)
    assert.throws(() => session.request(getHead('/'), true), { code: 'FERRY_ERR_SESSION_CLOSED' })
  })
})
