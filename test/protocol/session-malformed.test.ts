/**
 * Session-level malformed input, from a raw peer over a real socket: connection errors end
 * in a GOAWAY carrying the error's reset code and a closed socket; stream errors end in a
 * RESET of that stream only, and the connection keeps working.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  encodeRequestHead, encodeResponseHead, encodeWindowUpdate, FerryError, Flags, frameHeader, FrameType, PREFACE,
  PROTOCOL_ERRORS, type ProtocolErrorCode, ResetCode, type Session, type SessionOptions, type Stream
} from '@ferry/protocol'
import {
  decodeGoaway, decodeReset, frame, getHead, helloPayload, once, type RawPeer, resetPayload, sessionWithRawPeer
} from '../helpers/fixtures-native.ts'
import type { TestContext } from 'node:test'

const T = { timeout: 15000 }

const GET = encodeRequestHead(getHead('/'))
const post = (bodyLength: number): Uint8Array => encodeRequestHead(getHead('/p', { method: 'POST', bodyLength }))

interface Setup { session: Session, peer: RawPeer, errors: Error[], streamErrors: Error[], streams: Stream[] }

/** A server Session and a raw client that has sent the preface and a HELLO. */
async function server (t: TestContext, options: Omit<SessionOptions, 'role'> = {}, hello = true, manualConsume = false): Promise<Setup> {
  const s = await sessionWithRawPeer(t, 'server', options)
  const streams: Stream[] = []
  s.session.on('stream', (st: Stream) => {
    streams.push(st)
    st.onError = () => {}
    // a receiver that does not read: no credit goes back, the window only shrinks
    st.manualConsume = manualConsume
  })
  if (hello) {
    s.peer.hello('client')
    await once(s.session, 'ready')
  }
  return { ...s, streams }
}

/** A client Session (past HELLO) with one request open on stream 1, and a raw server. */
async function client (t: TestContext, options: Omit<SessionOptions, 'role'> = {}): Promise<Setup & { stream: Stream, streamError: Promise<FerryError> }> {
  const s = await sessionWithRawPeer(t, 'client', options)
  s.peer.hello('server')
  await once(s.session, 'ready')
  const stream = s.session.request(getHead('/'), true)
  const streamError = new Promise<FerryError>((resolve) => { stream.onError = resolve })
  stream.onResponse = () => {}
  await s.peer.waitType(FrameType.HEADERS, 1)
  return { ...s, streams: [], stream, streamError }
}

/** The session sent GOAWAY with the code's reset code, emitted 'error' with the code, and closed. */
async function connectionError (s: Setup, code: ProtocolErrorCode): Promise<void> {
  const g = await s.peer.waitType(FrameType.GOAWAY)
  assert.equal(g.streamId, 0)
  const goaway = decodeGoaway(g.payload)
  assert.equal(goaway.code, PROTOCOL_ERRORS[code].resetCode, `GOAWAY code for ${code}`)
  await s.peer.waitClose()
  assert.equal(s.session.closed, true)
  const err = s.errors[0]
  assert.ok(err instanceof FerryError, `an 'error' event for ${code}`)
  assert.equal(err.code, code, err.message)
  assert.equal(err.scope, 'connection')
  assert.equal(err.statusCode, PROTOCOL_ERRORS[code].statusCode)
}

/** The session reset stream `id` with the code's reset code and reported the code; the connection lives on. */
async function streamRefused (s: Setup, id: number, code: ProtocolErrorCode): Promise<void> {
  const r = await s.peer.waitType(FrameType.RESET, id)
  assert.equal(decodeReset(r.payload).code, PROTOCOL_ERRORS[code].resetCode, `RESET code for ${code}`)
  const err = s.streamErrors.find((e) => (e as FerryError).streamId === id)
  assert.ok(err instanceof FerryError, `a 'streamError' for stream ${id}`)
  assert.equal(err.code, code, err.message)
  assert.equal(s.session.closed, false)
  assert.deepEqual(s.errors, [])
}

/** The connection still works: a PING is answered. */
async function stillAlive (s: Setup): Promise<void> {
  const opaque = Buffer.from('a1ive000', 'latin1')
  s.peer.ping(opaque)
  const ack = await s.peer.waitFrame((f) => f.type === FrameType.PING && f.flags === Flags.ACK && f.payload === opaque.toString('hex'))
  assert.equal(ack.streamId, 0)
}

describe('connection opening', () => {
  test('no preface (an HTTP/1.1 request instead) → FERRY_ERR_PREFACE', T, async (t) => {
    const s = await server(t, {}, false)
    s.peer.send(Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n'))
    await connectionError(s, 'FERRY_ERR_PREFACE')
  })

  test('a preface wrong in its last byte → FERRY_ERR_PREFACE', T, async (t) => {
    const s = await server(t, {}, false)
    const bad = Buffer.from(PREFACE)
    bad[7] = 0x00
    s.peer.send(bad.subarray(0, 4))
    s.peer.send(bad.subarray(4))
    await connectionError(s, 'FERRY_ERR_PREFACE')
  })

  test('a first frame other than HELLO → FERRY_ERR_HELLO_REQUIRED', T, async (t) => {
    const s = await server(t, {}, false)
    s.peer.send(PREFACE, frame(FrameType.HEADERS, Flags.END_STREAM, 1, GET))
    await connectionError(s, 'FERRY_ERR_HELLO_REQUIRED')
  })

  test('HELLO with another major version → FERRY_ERR_HELLO_VERSION', T, async (t) => {
    const s = await server(t, {}, false)
    s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, helloPayload({}, {}, 2)))
    await connectionError(s, 'FERRY_ERR_HELLO_VERSION')
  })

  test('HELLO with version 0 (field absent) → FERRY_ERR_HELLO_VERSION', T, async (t) => {
    const s = await server(t, {}, false)
    s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, new Uint8Array(0)))
    await connectionError(s, 'FERRY_ERR_HELLO_VERSION')
  })

  // The shared-secret handshake (HMAC challenge-response) has its own file: session-auth.test.ts.

  for (const [what, limits] of [
    ['maxFramePayload below 1024', { maxFramePayload: 1023 }],
    ['maxFramePayload above 2^24-1', { maxFramePayload: 0x1000000 }],
    ['maxHeadBytes below 1024', { maxHeadBytes: 100 }],
    ['initialWindow below 1024', { initialWindow: 1 }],
    ['initialWindow above 2^31-1', { initialWindow: 0x80000000 }],
    ['connectionWindow above 2^31-1', { connectionWindow: 0xffffffff }]
  ] as const) {
    test(`HELLO limits: ${what} → FERRY_ERR_HELLO_LIMITS`, T, async (t) => {
      const s = await server(t, {}, false)
      s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, helloPayload(limits)))
      await connectionError(s, 'FERRY_ERR_HELLO_LIMITS')
    })
  }

  test('a second HELLO → FERRY_ERR_HELLO_DUPLICATE', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HELLO, 0, 0, helloPayload())
    await connectionError(s, 'FERRY_ERR_HELLO_DUPLICATE')
  })

  test('HELLO that is not valid protobuf → FERRY_ERR_PAYLOAD_INVALID', T, async (t) => {
    const s = await server(t, {}, false)
    s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, Buffer.from('0f', 'hex')))
    await connectionError(s, 'FERRY_ERR_PAYLOAD_INVALID')
  })

  test('no HELLO in time → FERRY_ERR_HELLO_TIMEOUT', T, async (t) => {
    const s = await server(t, { helloTimeout: 100 }, false)
    s.peer.send(PREFACE)
    await connectionError(s, 'FERRY_ERR_HELLO_TIMEOUT')
  })
})

describe('framing errors inside a session', () => {
  test('unknown frame type → FERRY_ERR_FRAME_UNKNOWN_TYPE', T, async (t) => {
    const s = await server(t)
    s.peer.send(frameHeader(0, 0x0a, 0, 1))
    await connectionError(s, 'FERRY_ERR_FRAME_UNKNOWN_TYPE')
  })

  test('a DATA frame above maxFramePayload → FERRY_ERR_FRAME_TOO_LARGE (GOAWAY FRAME_SIZE_ERROR)', T, async (t) => {
    const s = await server(t, { limits: { maxFramePayload: 1024 } })
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.send(frameHeader(1025, FrameType.DATA, 0, 1))
    await connectionError(s, 'FERRY_ERR_FRAME_TOO_LARGE')
  })

  test('a HEADERS frame above max(maxFramePayload, maxHeadBytes) → FERRY_ERR_FRAME_TOO_LARGE', T, async (t) => {
    const s = await server(t, { limits: { maxFramePayload: 1024, maxHeadBytes: 2048 } })
    s.peer.send(frameHeader(2049, FrameType.HEADERS, 0, 1))
    await connectionError(s, 'FERRY_ERR_FRAME_TOO_LARGE')
  })

  test('PING with 4 bytes → FERRY_ERR_FRAME_BAD_LENGTH', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.PING, 0, 0, Buffer.alloc(4))
    await connectionError(s, 'FERRY_ERR_FRAME_BAD_LENGTH')
  })

  test('RESET whose payload is not protobuf → FERRY_ERR_PAYLOAD_INVALID', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, GET)
    s.peer.sendFrame(FrameType.RESET, 0, 1, Buffer.from('0a05', 'hex'))
    await connectionError(s, 'FERRY_ERR_PAYLOAD_INVALID')
  })

  test('GOAWAY whose payload is not protobuf → FERRY_ERR_PAYLOAD_INVALID', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.GOAWAY, 0, 0, Buffer.from('ff', 'hex'))
    await connectionError(s, 'FERRY_ERR_PAYLOAD_INVALID')
  })
})

describe('stream ids', () => {
  test('HEADERS on an even stream id → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 2, GET)
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
  })

  test('a stream id not above the previous one → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 5, GET)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 3, GET)
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
    assert.equal(decodeGoaway(s.peer.frames.find((f) => f.type === FrameType.GOAWAY)!.payload).lastStreamId, 5)
  })

  test('DATA on a stream never opened → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.DATA, 0, 9, Buffer.from('x'))
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
  })

  test('WINDOW_UPDATE on a stream never opened → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await server(t)
    s.peer.send(encodeWindowUpdate(11, 100))
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
  })

  test('frames for a stream already closed are ignored', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.RESET, 0, 1, resetPayload(ResetCode.CANCEL))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.from('late'))
    s.peer.send(encodeWindowUpdate(1, 10))
    s.peer.sendFrame(FrameType.RESET, 0, 1, resetPayload(ResetCode.CANCEL))
    await stillAlive(s)
    assert.deepEqual(s.errors, [])
  })
})

describe('stream errors: RESET of that stream only', () => {
  test('too many concurrent streams → RESET REFUSED_STREAM (FERRY_ERR_STREAM_LIMIT); others unaffected', T, async (t) => {
    const s = await server(t, { limits: { maxConcurrentStreams: 2 } })
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.HEADERS, 0, 3, post(-1))
    s.peer.sendFrame(FrameType.HEADERS, 0, 5, post(-1))
    await streamRefused(s, 5, 'FERRY_ERR_STREAM_LIMIT')
    assert.equal(decodeReset((await s.peer.waitType(FrameType.RESET, 5)).payload).code, ResetCode.REFUSED_STREAM)
    assert.deepEqual(s.streams.map((x) => x.id), [1, 3])
    // finish stream 1: a new stream is accepted again
    s.peer.sendFrame(FrameType.DATA, Flags.END_STREAM, 1)
    s.streams[0]!.respond({ status: 200, headers: [], bodyLength: 0 }, true)
    await s.peer.waitType(FrameType.HEADERS, 1)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 7, GET)
    await stillAlive(s)
    assert.deepEqual(s.streams.map((x) => x.id), [1, 3, 7])
  })

  test('a head above maxHeadBytes → RESET FRAME_SIZE_ERROR (FERRY_ERR_HEAD_TOO_LARGE, 431)', T, async (t) => {
    const s = await server(t, { limits: { maxHeadBytes: 1024 } })
    const big = encodeRequestHead(getHead('/', { headers: ['x-big', 'v'.repeat(1500)] }))
    assert.ok(big.length > 1024 && big.length <= 65536)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, big)
    await streamRefused(s, 1, 'FERRY_ERR_HEAD_TOO_LARGE')
    assert.equal((s.streamErrors[0] as FerryError).statusCode, 431)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 3, GET)
    await stillAlive(s)
    assert.deepEqual(s.streams.map((x) => x.id), [3])
  })

  test('an invalid head → RESET PROTOCOL_ERROR (FERRY_ERR_HEAD_INVALID)', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, Buffer.from('08011a0161', 'hex')) // path "a"
    await streamRefused(s, 1, 'FERRY_ERR_HEAD_INVALID')
    await stillAlive(s)
    assert.equal(s.streams.length, 0)
  })

  test('a body shorter than declared → FERRY_ERR_BODY_LENGTH (400) on that stream', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(5))
    const err = new Promise<FerryError>((resolve) => s.session.once('stream', (st: Stream) => { st.onError = resolve }))
    s.peer.sendFrame(FrameType.DATA, Flags.END_STREAM, 1, Buffer.from('abc'))
    await streamRefused(s, 1, 'FERRY_ERR_BODY_LENGTH')
    const e = await err
    assert.equal(e.code, 'FERRY_ERR_BODY_LENGTH')
    assert.equal(e.statusCode, 400)
  })

  test('a body longer than declared → FERRY_ERR_BODY_LENGTH', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(5))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.from('abcdef'))
    await streamRefused(s, 1, 'FERRY_ERR_BODY_LENGTH')
    await stillAlive(s)
  })

  test('a declared body and END_STREAM on the HEADERS → FERRY_ERR_BODY_LENGTH', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, post(5))
    await streamRefused(s, 1, 'FERRY_ERR_BODY_LENGTH')
  })

  test('DATA after END_STREAM → FERRY_ERR_STREAM_STATE', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, GET)
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.from('x'))
    await streamRefused(s, 1, 'FERRY_ERR_STREAM_STATE')
    await stillAlive(s)
  })

  test('a second HEADERS on a stream (no trailers) → FERRY_ERR_STREAM_STATE', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    await streamRefused(s, 1, 'FERRY_ERR_STREAM_STATE')
  })
})

describe('flow-control violations', () => {
  test('DATA beyond the stream window → FERRY_ERR_FLOW_CONTROL (GOAWAY FLOW_CONTROL_ERROR)', T, async (t) => {
    const s = await server(t, { limits: { initialWindow: 1024 } }, true, true)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.alloc(1000))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.alloc(25))
    await connectionError(s, 'FERRY_ERR_FLOW_CONTROL')
  })

  test('DATA beyond the connection window → FERRY_ERR_FLOW_CONTROL', T, async (t) => {
    const s = await server(t, { limits: { initialWindow: 4096, connectionWindow: 1024 } }, true, true)
    // within the stream's window (4096), past the connection's (1024); credit comes back on
    // receipt, so only a single burst beyond the window before any WINDOW_UPDATE can exceed it
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.alloc(1025))
    await connectionError(s, 'FERRY_ERR_FLOW_CONTROL')
  })

  test('exactly the window is fine', T, async (t) => {
    const s = await server(t, { limits: { initialWindow: 1024 } }, true, true)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, post(-1))
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.alloc(1024))
    await stillAlive(s)
    assert.deepEqual(s.errors, [])
  })

  test('WINDOW_UPDATE past 2^31-1 on the connection → FERRY_ERR_WINDOW_OVERFLOW', T, async (t) => {
    const s = await server(t)
    s.peer.send(encodeWindowUpdate(0, 0x7fffffff))
    await connectionError(s, 'FERRY_ERR_WINDOW_OVERFLOW')
  })

  test('WINDOW_UPDATE past 2^31-1 on a stream → FERRY_ERR_WINDOW_OVERFLOW', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, GET)
    s.peer.send(encodeWindowUpdate(1, 0x7fffffff))
    await connectionError(s, 'FERRY_ERR_WINDOW_OVERFLOW')
  })

  test('WINDOW_UPDATE with increment 0 → FERRY_ERR_WINDOW_ZERO', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.alloc(4))
    await connectionError(s, 'FERRY_ERR_WINDOW_ZERO')
  })

  test('the reserved top bit of a WINDOW_UPDATE increment is ignored', T, async (t) => {
    const s = await server(t)
    s.peer.sendFrame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from('80000010', 'hex'))
    await stillAlive(s)
    assert.deepEqual(s.errors, [])
  })
})

describe('client side: malformed responses', () => {
  test('a response on a stream never opened → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await client(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 7, encodeResponseHead({ status: 200, headers: [], bodyLength: 0 }))
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
    assert.equal((await s.streamError).code, 'FERRY_ERR_SESSION_CLOSED')
  })

  test('a response on an even stream id → FERRY_ERR_STREAM_ID', T, async (t) => {
    const s = await client(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 2, encodeResponseHead({ status: 200, headers: [], bodyLength: 0 }))
    await connectionError(s, 'FERRY_ERR_STREAM_ID')
  })

  test('an invalid response head → the client resets the stream (FERRY_ERR_HEAD_INVALID)', T, async (t) => {
    const s = await client(t)
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, Buffer.from('0863', 'hex')) // status 99
    const err = await s.streamError
    assert.equal(err.code, 'FERRY_ERR_HEAD_INVALID')
    await streamRefused(s, 1, 'FERRY_ERR_HEAD_INVALID')
  })

  test('a response body longer than declared → FERRY_ERR_BODY_LENGTH', T, async (t) => {
    const s = await client(t)
    s.peer.sendFrame(FrameType.HEADERS, 0, 1, encodeResponseHead({ status: 200, headers: [], bodyLength: 2 }))
    s.peer.sendFrame(FrameType.DATA, Flags.END_STREAM, 1, Buffer.from('abc'))
    assert.equal((await s.streamError).code, 'FERRY_ERR_BODY_LENGTH')
    await streamRefused(s, 1, 'FERRY_ERR_BODY_LENGTH')
  })

  test('DATA before the response head → FERRY_ERR_STREAM_STATE', T, async (t) => {
    const s = await client(t)
    s.peer.sendFrame(FrameType.DATA, 0, 1, Buffer.from('abc'))
    assert.equal((await s.streamError).code, 'FERRY_ERR_STREAM_STATE')
    await streamRefused(s, 1, 'FERRY_ERR_STREAM_STATE')
  })

  test('a server HELLO with a smaller maxConcurrentStreams is honoured by request()', T, async (t) => {
    const s = await sessionWithRawPeer(t, 'client')
    s.peer.hello('server', { maxConcurrentStreams: 1 })
    await once(s.session, 'ready')
    s.session.request(getHead('/'), true)
    assert.throws(() => s.session.request(getHead('/'), true), { code: 'FERRY_ERR_STREAM_LIMIT' })
  })
})
