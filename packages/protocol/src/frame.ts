/**
 * The frame envelope: a 9-byte header (u24 length, u8 type, u8 flags, u32 stream id, all
 * big-endian; the stream id's top bit is reserved and must be 0) followed by the payload.
 *
 * FrameDecoder is a push state machine over arbitrary chunks (one byte at a time or many
 * frames per chunk). It checks the length against the limit as soon as the header is
 * complete — before buffering a byte of payload — and hands out payloads as views into the
 * chunk whenever a payload lies within one chunk; it copies only payloads split across
 * chunks. Encoders return pieces ([header, payload]) to be written with writev; payloads
 * are never copied.
 */
import { FRAME_HEADER_SIZE, FRAME_TYPE_MAX, Flags, FrameType, MAX_FRAME_PAYLOAD_LIMIT } from './constants.js'
import { protocolError } from './errors.js'

/** Flags each frame type may carry; any other bit is FERRY_ERR_FRAME_BAD_FLAGS. */
const ALLOWED_FLAGS: readonly number[] = [
  Flags.END_STREAM, // DATA
  Flags.END_STREAM, // HEADERS
  0, // RESET
  0, // GOAWAY
  Flags.ACK, // PING
  0, // WINDOW_UPDATE
  Flags.ACK // HELLO
]

export function frameHeader (length: number, type: number, flags: number, streamId: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_SIZE)
  writeFrameHeader(h, 0, length, type, flags, streamId)
  return h
}

export function writeFrameHeader (buf: Uint8Array, offset: number, length: number, type: number, flags: number, streamId: number): void {
  buf[offset] = length >>> 16
  buf[offset + 1] = (length >>> 8) & 0xff
  buf[offset + 2] = length & 0xff
  buf[offset + 3] = type
  buf[offset + 4] = flags
  buf[offset + 5] = (streamId >>> 24) & 0x7f
  buf[offset + 6] = (streamId >>> 16) & 0xff
  buf[offset + 7] = (streamId >>> 8) & 0xff
  buf[offset + 8] = streamId & 0xff
}

/** Header + payload as writev pieces; the payload is not copied. */
export function encodeFrame (type: number, flags: number, streamId: number, payload?: Uint8Array): Uint8Array[] {
  const len = payload === undefined ? 0 : payload.length
  if (len > MAX_FRAME_PAYLOAD_LIMIT) throw protocolError('FERRY_ERR_FRAME_TOO_LARGE', `${len} > ${MAX_FRAME_PAYLOAD_LIMIT}`)
  const h = frameHeader(len, type, flags, streamId)
  return len === 0 ? [h] : [h, payload!]
}

/** A frame small enough to build in one buffer (control frames): header and payload together. */
export function encodeSmallFrame (type: number, flags: number, streamId: number, payload: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.length)
  writeFrameHeader(b, 0, payload.length, type, flags, streamId)
  b.set(payload, FRAME_HEADER_SIZE)
  return b
}

export function encodePing (opaque: Uint8Array, ack: boolean): Buffer {
  return encodeSmallFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, opaque)
}

export function encodeWindowUpdate (streamId: number, increment: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 4)
  writeFrameHeader(b, 0, 4, FrameType.WINDOW_UPDATE, 0, streamId)
  b.writeUInt32BE(increment & 0x7fffffff, FRAME_HEADER_SIZE)
  return b
}

export type FrameHandler = (type: number, flags: number, streamId: number, payload: Buffer) => void

const S_HEADER = 0
const S_PAYLOAD = 1

export interface FrameDecoderOptions {
  /** Largest payload accepted; checked when a header completes, before any payload is kept. */
  maxFramePayload: number
  /** Largest HEADERS payload accepted (default: maxFramePayload). The session passes
   * max(maxFramePayload, maxHeadBytes) so an oversized head is a stream error, not a framing one. */
  maxHeadersPayload?: number
}

export class FrameDecoder {
  maxFramePayload: number
  maxHeadersPayload: number
  #onFrame: FrameHandler
  #state = S_HEADER
  #hdr = Buffer.alloc(FRAME_HEADER_SIZE)
  #hdrFill = 0
  #len = 0
  #type = 0
  #flags = 0
  #stream = 0
  #payload: Buffer | null = null
  #payloadFill = 0
  /** Total bytes consumed, for diagnostics. */
  bytesRead = 0

  constructor (options: FrameDecoderOptions, onFrame: FrameHandler) {
    this.maxFramePayload = options.maxFramePayload
    this.maxHeadersPayload = options.maxHeadersPayload ?? options.maxFramePayload
    this.#onFrame = onFrame
  }

  /** True when no partial frame is buffered (a clean place for a connection to end). */
  get idle (): boolean {
    return this.#state === S_HEADER && this.#hdrFill === 0
  }

  /**
   * Feed bytes. Calls onFrame for each complete frame; throws a FerryError (and must not be
   * fed again) on a malformed header. Payload buffers handed to onFrame may be views into
   * `chunk`: copy them if you keep them past the callback and the chunk may be reused.
   */
  push (chunk: Buffer): void {
    this.bytesRead += chunk.length
    let off = 0
    const n = chunk.length
    while (off < n) {
      if (this.#state === S_HEADER) {
        if (this.#hdrFill === 0 && n - off >= FRAME_HEADER_SIZE) {
          // fast path: whole header inside this chunk
          this.#parseHeader(chunk, off)
          off += FRAME_HEADER_SIZE
        } else {
          const take = Math.min(FRAME_HEADER_SIZE - this.#hdrFill, n - off)
          chunk.copy(this.#hdr, this.#hdrFill, off, off + take)
          this.#hdrFill += take
          off += take
          if (this.#hdrFill < FRAME_HEADER_SIZE) return
          this.#hdrFill = 0
          this.#parseHeader(this.#hdr, 0)
        }
        const len = this.#len
        if (len === 0) {
          this.#emit(EMPTY)
          continue
        }
        if (n - off >= len) {
          // fast path: whole payload inside this chunk, hand out a view
          const payload = chunk.subarray(off, off + len)
          off += len
          this.#emit(payload)
          continue
        }
        this.#payload = Buffer.allocUnsafe(len)
        this.#payloadFill = 0
        this.#state = S_PAYLOAD
      }
      // S_PAYLOAD: collect a payload split across chunks
      const p = this.#payload!
      const take = Math.min(p.length - this.#payloadFill, n - off)
      chunk.copy(p, this.#payloadFill, off, off + take)
      this.#payloadFill += take
      off += take
      if (this.#payloadFill === p.length) {
        this.#payload = null
        this.#state = S_HEADER
        this.#emit(p)
      }
    }
  }

  #parseHeader (b: Buffer, o: number): void {
    const len = (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!
    const type = b[o + 3]!
    const flags = b[o + 4]!
    const reserved = b[o + 5]! & 0x80
    const stream = ((b[o + 5]! & 0x7f) * 0x1000000) + ((b[o + 6]! << 16) | (b[o + 7]! << 8) | b[o + 8]!)
    if (type > FRAME_TYPE_MAX) throw protocolError('FERRY_ERR_FRAME_UNKNOWN_TYPE', `type 0x${type.toString(16)}`)
    const limit = type === FrameType.HEADERS ? this.maxHeadersPayload : this.maxFramePayload
    if (len > limit) {
      throw protocolError('FERRY_ERR_FRAME_TOO_LARGE', `${len} > ${limit}`, { streamId: stream })
    }
    if ((flags & ~ALLOWED_FLAGS[type]!) !== 0) {
      throw protocolError('FERRY_ERR_FRAME_BAD_FLAGS', `flags 0x${flags.toString(16)} on type ${type}`, { streamId: stream })
    }
    if (reserved !== 0) throw protocolError('FERRY_ERR_FRAME_BAD_STREAM', 'reserved bit set in stream id')
    const connectionLevel = type === FrameType.GOAWAY || type === FrameType.PING || type === FrameType.HELLO
    if (connectionLevel ? stream !== 0 : (stream === 0 && type !== FrameType.WINDOW_UPDATE)) {
      throw protocolError('FERRY_ERR_FRAME_BAD_STREAM', `stream ${stream} on type ${type}`, { streamId: stream })
    }
    if ((type === FrameType.PING && len !== 8) || (type === FrameType.WINDOW_UPDATE && len !== 4)) {
      throw protocolError('FERRY_ERR_FRAME_BAD_LENGTH', `length ${len} on type ${type}`, { streamId: stream })
    }
    this.#len = len
    this.#type = type
    this.#flags = flags
    this.#stream = stream
  }

  #emit (payload: Buffer): void {
    this.#onFrame(this.#type, this.#flags, this.#stream, payload)
  }
}

const EMPTY = Buffer.alloc(0)
