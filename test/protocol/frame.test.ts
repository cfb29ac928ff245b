/**
 * The frame envelope: exact header bytes, encoders, and the FrameDecoder fed every fixture
 * whole, byte by byte and at random split points (fast-check), with payload views vs copies.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  encodeFrame, encodePing, encodeSmallFrame, encodeWindowUpdate, FerryError, Flags, FRAME_HEADER_SIZE,
  FrameDecoder, frameHeader, FrameType, MAX_FRAME_PAYLOAD_LIMIT, PREFACE, writeFrameHeader
} from '@ferry/protocol'
import fc from 'fast-check'
import { allFixtureBytes, type DecodedFrame, decodeChunks, frame, frameFixtures, hex, splitAt } from '../helpers/fixtures-native.ts'

describe('frame header bytes', () => {
  test('preface is \\x89FERRY\\r\\n', () => {
    assert.equal(hex(PREFACE), '894645525259' + '0d0a')
    assert.equal(FRAME_HEADER_SIZE, 9)
  })

  test('u24 length, type, flags, u32 stream id, all big-endian', () => {
    assert.equal(hex(frameHeader(5, FrameType.DATA, Flags.END_STREAM, 3)), '000005' + '00' + '01' + '00000003')
    assert.equal(hex(frameHeader(0x123456, FrameType.HEADERS, 0, 0x01020304)), '123456' + '01' + '00' + '01020304')
    assert.equal(hex(frameHeader(MAX_FRAME_PAYLOAD_LIMIT, FrameType.HELLO, Flags.ACK, 0)), 'ffffff' + '06' + '02' + '00000000')
    assert.equal(hex(frameHeader(0, FrameType.DATA, 0, 0x7fffffff)), '000000' + '00' + '00' + '7fffffff')
  })

  test('the reserved top bit of the stream id is always written as 0', () => {
    assert.equal(hex(frameHeader(1, FrameType.DATA, 0, 0x80000001)), '000001' + '00' + '00' + '00000001')
    assert.equal(hex(frameHeader(1, FrameType.DATA, 0, 0xffffffff)), '000001' + '00' + '00' + '7fffffff')
  })

  test('writeFrameHeader writes at an offset and touches nothing else', () => {
    const b = Buffer.alloc(13, 0xee)
    writeFrameHeader(b, 2, 258, FrameType.RESET, 0, 77)
    assert.equal(hex(b), 'eeee' + '000102' + '02' + '00' + '0000004d' + 'eeee')
  })

  test('encodeFrame returns [header, payload] without copying the payload', () => {
    const payload = Buffer.from('abc')
    const pieces = encodeFrame(FrameType.DATA, Flags.END_STREAM, 1, payload)
    assert.equal(pieces.length, 2)
    assert.equal(hex(pieces[0]!), '000003' + '00' + '01' + '00000001')
    assert.equal(pieces[1], payload)
    const empty = encodeFrame(FrameType.DATA, Flags.END_STREAM, 1)
    assert.equal(empty.length, 1)
    assert.equal(hex(empty[0]!), '000000' + '00' + '01' + '00000001')
  })

  test('encodeFrame refuses a payload beyond the u24 length', () => {
    const tooBig = Buffer.alloc(MAX_FRAME_PAYLOAD_LIMIT + 1)
    assert.throws(() => encodeFrame(FrameType.DATA, 0, 1, tooBig), (err: unknown) => {
      assert.ok(err instanceof FerryError)
      assert.equal(err.code, 'FERRY_ERR_FRAME_TOO_LARGE')
      return true
    })
  })

  test('control frame encoders', () => {
    const opaque = Buffer.from('0102030405060708', 'hex')
    assert.equal(hex(encodePing(opaque, false)), '000008' + '04' + '00' + '00000000' + '0102030405060708')
    assert.equal(hex(encodePing(opaque, true)), '000008' + '04' + '02' + '00000000' + '0102030405060708')
    assert.equal(hex(encodeWindowUpdate(0, 65536)), '000004' + '05' + '00' + '00000000' + '00010000')
    assert.equal(hex(encodeWindowUpdate(9, 0x7fffffff)), '000004' + '05' + '00' + '00000009' + '7fffffff')
    assert.equal(hex(encodeSmallFrame(FrameType.RESET, 0, 5, Buffer.from([0x08, 0x05]))), '000002' + '02' + '00' + '00000005' + '0805')
  })
})

describe('FrameDecoder', () => {
  const fixtures = frameFixtures()

  for (const fx of fixtures) {
    test(`fixture "${fx.name}": whole, byte by byte, and in two halves`, () => {
      const whole = decodeChunks([fx.bytes])
      assert.deepEqual(whole.frames, fx.frames)
      assert.equal(whole.decoder.idle, true)
      assert.equal(whole.decoder.bytesRead, fx.bytes.length)

      const bytes: Buffer[] = []
      for (let i = 0; i < fx.bytes.length; i++) bytes.push(fx.bytes.subarray(i, i + 1))
      const byByte = decodeChunks(bytes)
      assert.deepEqual(byByte.frames, fx.frames)
      assert.equal(byByte.decoder.idle, true)

      const half = decodeChunks(splitAt(fx.bytes, [fx.bytes.length >> 1]))
      assert.deepEqual(half.frames, fx.frames)
    })
  }

  test('every fixture back to back, at random split points (fast-check, 500 runs)', () => {
    const { bytes, frames } = allFixtureBytes()
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: bytes.length }), { maxLength: 40 }), (points) => {
        const out = decodeChunks(splitAt(bytes, points))
        assert.deepEqual(out.frames, frames)
        assert.equal(out.decoder.idle, true)
      }),
      { numRuns: 500 }
    )
  })

  test('random valid frames, random splits, decode to themselves (fast-check, 300 runs)', () => {
    const connectionTypes = [FrameType.GOAWAY, FrameType.HELLO]
    const frameArb = fc.oneof(
      fc.record({
        type: fc.constantFrom(FrameType.DATA, FrameType.HEADERS),
        flags: fc.constantFrom(0, Flags.END_STREAM),
        streamId: fc.integer({ min: 1, max: 0x7fffffff }),
        payload: fc.uint8Array({ maxLength: 600 })
      }),
      fc.record({
        type: fc.constant(FrameType.RESET),
        flags: fc.constant(0),
        streamId: fc.integer({ min: 1, max: 0x7fffffff }),
        payload: fc.uint8Array({ maxLength: 40 })
      }),
      fc.record({
        type: fc.constantFrom(...connectionTypes),
        flags: fc.constant(0),
        streamId: fc.constant(0),
        payload: fc.uint8Array({ maxLength: 100 })
      }),
      fc.record({
        type: fc.constant(FrameType.PING),
        flags: fc.constantFrom(0, Flags.ACK),
        streamId: fc.constant(0),
        payload: fc.uint8Array({ minLength: 8, maxLength: 8 })
      }),
      fc.record({
        type: fc.constant(FrameType.WINDOW_UPDATE),
        flags: fc.constant(0),
        streamId: fc.integer({ min: 0, max: 0x7fffffff }),
        payload: fc.uint8Array({ minLength: 4, maxLength: 4 })
      })
    )
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 30 }),
        (frames, points) => {
          const bytes = Buffer.concat(frames.map((x) => frame(x.type, x.flags, x.streamId, x.payload)))
          const expected: DecodedFrame[] = frames.map((x) => ({ type: x.type, flags: x.flags, streamId: x.streamId, payload: hex(x.payload) }))
          const out = decodeChunks(splitAt(bytes, points.map((p) => p % (bytes.length + 1))))
          assert.deepEqual(out.frames, expected)
          assert.equal(out.decoder.idle, true)
        }
      ),
      { numRuns: 300 }
    )
  })

  test('a payload within one chunk is a view into it; a payload split across chunks is a copy', () => {
    const bytes = frame(FrameType.DATA, 0, 1, Buffer.from('abcdef'))
    let seen: Buffer | null = null
    const d = new FrameDecoder({ maxFramePayload: 1024 }, (_t, _f, _s, p) => { seen = p })
    d.push(bytes)
    const view = seen as unknown as Buffer
    assert.equal(view.buffer, bytes.buffer)
    assert.equal(view.byteOffset, bytes.byteOffset + FRAME_HEADER_SIZE)
    bytes[FRAME_HEADER_SIZE] = 0x7a // 'z'
    assert.equal(view.toString(), 'zbcdef', 'a view sees writes to the chunk')

    const again = frame(FrameType.DATA, 0, 1, Buffer.from('abcdef'))
    const first = Buffer.from(again.subarray(0, 12))
    const second = Buffer.from(again.subarray(12))
    d.push(first)
    assert.equal(d.idle, false)
    d.push(second)
    const copy = seen as unknown as Buffer
    assert.equal(copy.toString(), 'abcdef')
    first.fill(0)
    second.fill(0)
    assert.equal(copy.toString(), 'abcdef', 'a copied payload does not change with the chunks')
    assert.equal(d.idle, true)
  })

  test('a header split across chunks and a payload in the next chunk is a view into that chunk', () => {
    const bytes = frame(FrameType.DATA, 0, 1, Buffer.from('xyz'))
    let seen: Buffer | null = null
    const d = new FrameDecoder({ maxFramePayload: 1024 }, (_t, _f, _s, p) => { seen = p })
    d.push(Buffer.from(bytes.subarray(0, 4)))
    const rest = Buffer.from(bytes.subarray(4))
    d.push(rest)
    const p = seen as unknown as Buffer
    assert.equal(p.toString(), 'xyz')
    assert.equal(p.buffer, rest.buffer)
  })

  test('empty payloads are delivered as zero-length buffers', () => {
    const out = decodeChunks([frame(FrameType.DATA, Flags.END_STREAM, 3)])
    assert.deepEqual(out.frames, [{ type: FrameType.DATA, flags: Flags.END_STREAM, streamId: 3, payload: '' }])
  })

  test('a frame exactly at the limit is accepted; HEADERS may use maxHeadersPayload', () => {
    const at = decodeChunks([frame(FrameType.DATA, 0, 1, Buffer.alloc(1024))], 1024)
    assert.equal(at.frames.length, 1)
    const frames: number[] = []
    const d = new FrameDecoder({ maxFramePayload: 1024, maxHeadersPayload: 4096 }, (type, _f, _s, p) => frames.push(type, p.length))
    d.push(frame(FrameType.HEADERS, 0, 1, Buffer.alloc(4096)))
    assert.deepEqual(frames, [FrameType.HEADERS, 4096])
    assert.throws(() => d.push(frameHeader(1025, FrameType.DATA, 0, 1)), { code: 'FERRY_ERR_FRAME_TOO_LARGE' })
  })

  test('the stream id uses all 31 bits (values above 2^24 decode exactly)', () => {
    const out = decodeChunks([frame(FrameType.DATA, 0, 0x7ffffffd, Buffer.from('a')), frame(FrameType.DATA, 0, 0x01000001)])
    assert.deepEqual(out.frames.map((x) => x.streamId), [0x7ffffffd, 0x01000001])
  })
})
