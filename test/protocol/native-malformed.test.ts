/**
 * Malformed corpus for the frame envelope and the head codec: each input gets a FerryError
 * with the expected code, HTTP status and scope. (Session-level cases: session-malformed.test.ts.)
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodeRequestHead, decodeResponseHead, emptyRequestHead, encodeRequestHead, FerryError, FRAME_HEADER_SIZE,
  FrameDecoder, frameHeader, FrameType, HEADER_NAMES, PROTOCOL_ERRORS, type ProtocolErrorCode
} from '@ferry/protocol'
import { ferry } from '../../packages/protocol/gen/ferry.js'
import { frame, frameFixtures, unhex } from '../helpers/fixtures-native.ts'

/** Asserts that fn throws a FerryError with `code`, and the table's statusCode and scope. */
function assertFerry (fn: () => unknown, code: ProtocolErrorCode, streamId?: number): FerryError {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof FerryError, `expected a FerryError ${code}, got ${String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  assert.equal(caught.statusCode, PROTOCOL_ERRORS[code].statusCode)
  assert.equal(caught.scope, PROTOCOL_ERRORS[code].scope)
  assert.equal(caught.resetCode, PROTOCOL_ERRORS[code].resetCode)
  if (streamId !== undefined) assert.equal(caught.streamId, streamId)
  return caught
}

function decoder (max = 65536): { d: FrameDecoder, frames: number[] } {
  const frames: number[] = []
  return { d: new FrameDecoder({ maxFramePayload: max }, (type) => frames.push(type)), frames }
}

/** A raw 9-byte header, reserved bit and all, exactly as given. */
function rawHeader (len: number, type: number, flags: number, streamWord: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER_SIZE)
  b.writeUIntBE(len, 0, 3)
  b[3] = type
  b[4] = flags
  b.writeUInt32BE(streamWord >>> 0, 5)
  return b
}

describe('malformed frames', () => {
  test('truncated frames: nothing is emitted, the decoder waits and is not idle', () => {
    for (const fx of frameFixtures()) {
      // frame boundaries: cutting there leaves the decoder idle; cutting anywhere else must not
      const boundaries = new Set<number>([0])
      let at = 0
      for (const f of fx.frames) boundaries.add((at += FRAME_HEADER_SIZE + f.payload.length / 2))
      for (let cut = 1; cut < fx.bytes.length; cut++) {
        const { d, frames } = decoder()
        d.push(fx.bytes.subarray(0, cut))
        let complete = 0
        for (const b of boundaries) if (b > 0 && b <= cut) complete++
        assert.equal(frames.length, complete, `${fx.name} cut at ${cut}`)
        assert.equal(d.idle, boundaries.has(cut), `${fx.name} cut at ${cut}`)
      }
    }
    // byte by byte through one frame: no frame until the last byte
    const one = frame(FrameType.DATA, 1, 1, Buffer.from('abc'))
    const { d, frames } = decoder()
    for (let i = 0; i < one.length - 1; i++) {
      d.push(one.subarray(i, i + 1))
      assert.equal(frames.length, 0)
      assert.equal(d.idle, false)
    }
    d.push(one.subarray(one.length - 1))
    assert.deepEqual(frames, [FrameType.DATA])
    assert.equal(d.idle, true)
  })

  test('oversized length: FERRY_ERR_FRAME_TOO_LARGE as soon as the 9 header bytes arrive', () => {
    for (const [len, type] of [[65537, FrameType.DATA], [0xffffff, FrameType.DATA], [65537, FrameType.HEADERS], [65537, FrameType.GOAWAY], [65537, FrameType.HELLO]] as const) {
      const { d, frames } = decoder(65536)
      const streamId = type === FrameType.GOAWAY || type === FrameType.HELLO ? 0 : 1
      const err = assertFerry(() => d.push(frameHeader(len, type, 0, streamId)), 'FERRY_ERR_FRAME_TOO_LARGE')
      assert.equal(err.resetCode, 7) // FRAME_SIZE_ERROR
      assert.equal(d.bytesRead, FRAME_HEADER_SIZE, 'only the header was read')
      assert.equal(frames.length, 0)
    }
    // byte by byte: the 9th byte throws
    const { d } = decoder(1024)
    const h = frameHeader(1025, FrameType.DATA, 0, 1)
    for (let i = 0; i < 8; i++) d.push(h.subarray(i, i + 1))
    assertFerry(() => d.push(h.subarray(8)), 'FERRY_ERR_FRAME_TOO_LARGE')
  })

  test('unknown frame type', () => {
    for (const type of [0x07, 0x10, 0x7f, 0xff]) {
      assertFerry(() => decoder().d.push(frameHeader(0, type, 0, 1)), 'FERRY_ERR_FRAME_UNKNOWN_TYPE')
    }
  })

  test('flags not defined for the frame type', () => {
    const cases: [number, number, number][] = [
      [FrameType.DATA, 0x02, 1], [FrameType.DATA, 0x80, 1], [FrameType.HEADERS, 0x02, 1], [FrameType.HEADERS, 0x04, 1],
      [FrameType.RESET, 0x01, 1], [FrameType.GOAWAY, 0x01, 0], [FrameType.PING, 0x01, 0], [FrameType.PING, 0x03, 0],
      [FrameType.WINDOW_UPDATE, 0x01, 1], [FrameType.WINDOW_UPDATE, 0x02, 0], [FrameType.HELLO, 0x01, 0], [FrameType.HELLO, 0xff, 0]
    ]
    for (const [type, flags, stream] of cases) {
      const len = type === FrameType.PING ? 8 : type === FrameType.WINDOW_UPDATE ? 4 : 0
      assertFerry(() => decoder().d.push(frameHeader(len, type, flags, stream)), 'FERRY_ERR_FRAME_BAD_FLAGS')
    }
  })

  test('a stream id on connection frames, stream 0 on stream frames', () => {
    assertFerry(() => decoder().d.push(frameHeader(0, FrameType.GOAWAY, 0, 1)), 'FERRY_ERR_FRAME_BAD_STREAM', 1)
    assertFerry(() => decoder().d.push(frameHeader(8, FrameType.PING, 0, 3)), 'FERRY_ERR_FRAME_BAD_STREAM', 3)
    assertFerry(() => decoder().d.push(frameHeader(0, FrameType.HELLO, 0, 0x7fffffff)), 'FERRY_ERR_FRAME_BAD_STREAM')
    assertFerry(() => decoder().d.push(frameHeader(1, FrameType.DATA, 0, 0)), 'FERRY_ERR_FRAME_BAD_STREAM', 0)
    assertFerry(() => decoder().d.push(frameHeader(1, FrameType.HEADERS, 1, 0)), 'FERRY_ERR_FRAME_BAD_STREAM')
    assertFerry(() => decoder().d.push(frameHeader(0, FrameType.RESET, 0, 0)), 'FERRY_ERR_FRAME_BAD_STREAM')
    // WINDOW_UPDATE is allowed on both
    const { d, frames } = decoder()
    d.push(frame(FrameType.WINDOW_UPDATE, 0, 0, unhex('00000001')))
    d.push(frame(FrameType.WINDOW_UPDATE, 0, 5, unhex('00000001')))
    assert.deepEqual(frames, [FrameType.WINDOW_UPDATE, FrameType.WINDOW_UPDATE])
  })

  test('the reserved bit of the stream id must be 0', () => {
    assertFerry(() => decoder().d.push(rawHeader(0, FrameType.DATA, 0, 0x80000001)), 'FERRY_ERR_FRAME_BAD_STREAM')
    assertFerry(() => decoder().d.push(rawHeader(0, FrameType.GOAWAY, 0, 0x80000000)), 'FERRY_ERR_FRAME_BAD_STREAM')
  })

  test('PING must carry 8 bytes, WINDOW_UPDATE 4', () => {
    for (const len of [0, 4, 7, 9, 64]) {
      const err = assertFerry(() => decoder().d.push(frameHeader(len, FrameType.PING, 0, 0)), 'FERRY_ERR_FRAME_BAD_LENGTH')
      assert.equal(err.resetCode, 7)
    }
    for (const len of [0, 3, 5, 8]) {
      assertFerry(() => decoder().d.push(frameHeader(len, FrameType.WINDOW_UPDATE, 0, 1)), 'FERRY_ERR_FRAME_BAD_LENGTH')
    }
  })

  test('a frame after good ones still throws, and the good ones were delivered first', () => {
    const { d, frames } = decoder()
    const bytes = Buffer.concat([frame(FrameType.DATA, 0, 1, Buffer.from('ok')), frameHeader(0, 0x09, 0, 1)])
    assertFerry(() => d.push(bytes), 'FERRY_ERR_FRAME_UNKNOWN_TYPE')
    assert.deepEqual(frames, [FrameType.DATA])
  })
})

// ── heads ──────────────────────────────────────────────────────────────────

function reqBytes (props: ferry.RequestHead.$Properties): Uint8Array {
  return ferry.RequestHead.encode({ method: 1, path: '/', ...props }).finish()
}
function resBytes (props: ferry.ResponseHead.$Properties): Uint8Array {
  return ferry.ResponseHead.encode({ status: 200, ...props }).finish()
}
const badReq = (bytes: Uint8Array, streamId = 7): FerryError => assertFerry(() => decodeRequestHead(bytes, streamId), 'FERRY_ERR_HEAD_INVALID', streamId)
const badRes = (bytes: Uint8Array, streamId = 7): FerryError => assertFerry(() => decodeResponseHead(bytes, streamId), 'FERRY_ERR_HEAD_INVALID', streamId)

describe('malformed heads → FERRY_ERR_HEAD_INVALID (stream scope, 502)', () => {
  test('invalid protobuf', () => {
    const good = Buffer.from(encodeRequestHead(emptyRequestHead()))
    for (const h of [
      '08', // truncated varint (tag, no value)
      '0880', // varint with continuation bit and nothing after
      '1a05' + '2f', // length runs past the end
      '0f', // wire type 7
      '0b', // wire type 3 (group start, unsupported)
      '0c', // wire type 4 (group end)
      `08${'ff'.repeat(10)}01`, // varint longer than 10 bytes
      '32' + '05' + '0801', // header sub-message longer than the message
      '3203' + '1a05' + '4142', // header field runs past the sub-message
      '7a' + '10' + '00' // unknown field whose length runs past the end
    ]) {
      badReq(unhex(h))
    }
    for (let cut = 1; cut < good.length; cut++) {
      // every strict prefix of a valid head either decodes to a different head or throws HEAD_INVALID — never anything else
      try {
        decodeRequestHead(good.subarray(0, cut))
      } catch (err) {
        assert.ok(err instanceof FerryError)
        assert.equal(err.code, 'FERRY_ERR_HEAD_INVALID')
      }
    }
    badRes(unhex('12'))
    badRes(unhex('08c801' + '1201'))
  })

  test('unknown header code', () => {
    badReq(reqBytes({ headers: [{ code: HEADER_NAMES.length, value: 'x' }] }))
    badReq(reqBytes({ headers: [{ code: 0xffff, value: 'x' }] }))
    badRes(resBytes({ headers: [{ code: 1000, value: 'x' }] }))
  })

  test('invalid header names: uppercase, space, colon, empty, non-ASCII', () => {
    for (const name of ['Content-Type', 'X-A', 'x y', ' x', ':path', '', 'ñ', 'a\tb', 'x\r\n', 'a"b', 'a(b', 'a/b']) {
      badReq(reqBytes({ headers: [{ name, value: 'v' }] }))
      badRes(resBytes({ headers: [{ name, value: 'v' }] }))
    }
  })

  test('CR, LF or NUL in a header value (table and non-table names)', () => {
    for (const value of ['a\rb', 'a\nb', 'a\r\nx-injected: 1', '\0', 'x\0']) {
      badReq(reqBytes({ headers: [{ code: 9, value }] }))
      badReq(reqBytes({ headers: [{ name: 'x-a', value }] }))
      badRes(resBytes({ headers: [{ code: 20, value }] }))
    }
  })

  test('path not origin-form', () => {
    for (const path of ['', 'abc', 'http://x/', ' /', '/a b', '/a\r\nb', '/\0', '**']) {
      badReq(reqBytes({ path }))
    }
    // "//" starts with "/" and is a valid origin-form path
    assert.equal(decodeRequestHead(reqBytes({ path: '//' })).path, '//')
  })

  test('unknown method code, invalid method token, no method at all', () => {
    badReq(reqBytes({ method: 10 }))
    badReq(reqBytes({ method: 255 }))
    badReq(reqBytes({ method: 0, methodName: 'GE T' }))
    badReq(reqBytes({ method: 0, methodName: 'GET\r\n' }))
    badReq(reqBytes({ method: 0, methodName: '' }))
    badReq(ferry.RequestHead.encode({ path: '/' }).finish())
  })

  test('status out of range (missing, < 100, > 999)', () => {
    badRes(resBytes({ status: 0 }))
    badRes(ferry.ResponseHead.encode({}).finish())
    badRes(resBytes({ status: 99 }))
    badRes(resBytes({ status: 1000 }))
    badRes(resBytes({ status: 65536 + 200 }))
    assert.equal(decodeResponseHead(resBytes({ status: 100 })).status, 100)
    assert.equal(decodeResponseHead(resBytes({ status: 999 })).status, 999)
  })

  test('body length below -1', () => {
    badReq(reqBytes({ bodyLength: -2 }))
    badReq(reqBytes({ bodyLength: -1000000 }))
    badRes(resBytes({ bodyLength: -2 }))
    assert.equal(decodeRequestHead(reqBytes({ bodyLength: -1 })).bodyLength, -1)
  })

  test('trusted fields: CR/LF/NUL in authority or request id, port above 65535', () => {
    badReq(reqBytes({ authority: 'a\r\nb' }))
    badReq(reqBytes({ requestId: 'r\n1' }))
    badReq(reqBytes({ remotePort: 65536 }))
    badReq(reqBytes({ serverPort: 70000 }))
  })

  test('errors without a stream id default to stream 0', () => {
    const err = assertFerry(() => decodeRequestHead(unhex('0f')), 'FERRY_ERR_HEAD_INVALID')
    assert.equal(err.streamId, 0)
  })
})
