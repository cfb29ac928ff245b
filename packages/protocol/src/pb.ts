/**
 * Protobuf reading for the per-request hot path (the request and response heads): reads any
 * valid encoding of a message, checking every bound (pb-writer.ts writes them).
 */
import { protocolError } from './errors.js'

// Buffer's own utf8Slice/latin1Slice (stable since Node 0.x, used by protobufjs and ws) skip
// the argument normalisation of toString(): a measurable share of a head's cost.
interface FastBuffer extends Buffer {
  utf8Slice (start: number, end: number): string
  latin1Slice (start: number, end: number): string
}

const HIGH_BYTE = /[\x80-\xff]/
/** A byte >= 0x80 (decode as UTF-8) or CR, LF, NUL (a caller may refuse the value). */
const NOT_PLAIN = /[\0\n\r\x80-\xff]/
/** Up to this length a field is scanned by a loop: cheaper than entering the regexp. */
const SHORT_SCAN = 32

/** NOT_PLAIN.test for the bytes from..to (latin1: one byte, one char). */
function notPlainBytes (b: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = b[i]!
    if (c >= 0x80 || c === 0x0a || c === 0x0d || c === 0) return true
  }
  return false
}

function invalid (what: string, streamId: number): Error {
  return protocolError('FERRY_ERR_HEAD_INVALID', what, { streamId })
}

/**
 * The last plain string decoded into each cache slot, and its bytes (see
 * PbReader.cachedString): fields such as the scheme, the server name or a response's
 * content-type repeat from one head to the next, and comparing their bytes with the last
 * value's costs less than making a string and scanning it. Only plain strings (ASCII, no CR,
 * LF or NUL) up to CACHE_MAX bytes enter, so bytes equal to an entry's are plain too; longer
 * ones compare slower than the regexp scans them.
 */
export const CACHE_SLOTS = 128
const CACHE_MAX = 32
const cacheStrings: string[] = new Array<string>(CACHE_SLOTS).fill('')
const cacheBytes = Buffer.alloc(CACHE_SLOTS * CACHE_MAX)
/**
 * A string of 13 chars or more cut from the message text is a slice that keeps the whole
 * text alive (V8 SlicedString); such strings are cached only from messages up to this size,
 * so the cache keeps at most CACHE_SLOTS × 2 KiB of message text alive.
 */
const CACHE_SLICE_MAX_MESSAGE = 2048
const SLICE_MIN = 13
const EMPTY = Buffer.alloc(0)

/**
 * A cursor over one message's bytes. Every read checks bounds and throws
 * FERRY_ERR_HEAD_INVALID. One reader serves every message (reset() per message): decoding
 * is synchronous and never calls out, so no two messages share it at once.
 */
export class PbReader {
  buf: Buffer = EMPTY
  pos = 0
  end = 0
  streamId = 0
  /**
   * The whole message as one latin1 string (one byte, one char), made on the first string
   * the cache does not answer: a field whose bytes are all ASCII — nearly every header —
   * becomes a substring of it, far cheaper than one UTF-8 decode per field; a field with a
   * byte >= 0x80 is decoded as UTF-8.
   */
  #text = ''
  #hasText = false
  #base = 0
  #limit = 0
  /**
   * The last string() was plain ASCII without CR, LF or NUL: a caller that must refuse
   * those in a value can skip its own check (one scan serves both).
   */
  plain = true

  reset (buf: Buffer, pos: number, end: number, streamId: number): this {
    this.buf = buf
    this.pos = pos
    this.end = end
    this.streamId = streamId
    this.#base = pos
    this.#limit = end
    this.#hasText = false
    this.#text = ''
    return this
  }

  varint (): number {
    const p = this.pos
    if (p < this.end) {
      const first = this.buf[p]!
      if (first < 0x80) { // one byte: tags, codes, short lengths (small enough to inline)
        this.pos = p + 1
        return first
      }
    }
    return this.#varintLong()
  }

  #varintLong (): number {
    const b = this.buf
    let p = this.pos
    let result = 0
    let mul = 1
    for (let i = 0; i < 10; i++) {
      if (p >= this.end) throw invalid('truncated varint', this.streamId)
      const byte = b[p++]!
      result += (byte & 0x7f) * mul
      if (byte < 0x80) {
        if (result > Number.MAX_SAFE_INTEGER) throw invalid('varint beyond 2^53', this.streamId)
        this.pos = p
        return result
      }
      mul *= 128
    }
    throw invalid('varint longer than 10 bytes', this.streamId)
  }

  sint (): number {
    const v = this.varint()
    return v % 2 === 0 ? v / 2 : -(v + 1) / 2
  }

  /** Length of a length-delimited field, checked against the message end. */
  length (): number {
    const n = this.varint()
    if (n > this.end - this.pos) throw invalid('length-delimited field runs past the message', this.streamId)
    return n
  }

  string (): string {
    const n = this.length()
    const p = this.pos
    this.pos = p + n
    return this.#decode(p, n)
  }

  /**
   * string(), answered from cache slot `slot` when the bytes equal the string last decoded
   * there (then plain is true); any other plain string replaces it. The slot only picks
   * which value is compared: the result is the same as string()'s whatever the slot holds.
   */
  cachedString (slot: number): string {
    const n = this.length()
    const p = this.pos
    this.pos = p + n
    const last = cacheStrings[slot]!
    const b = this.buf
    const o = slot * CACHE_MAX
    if (last.length === n) {
      let i = 0
      while (i < n && cacheBytes[o + i] === b[p + i]) i++
      if (i === n) {
        this.plain = true
        return last
      }
    }
    const s = this.#decode(p, n)
    if (this.plain && n <= CACHE_MAX && (n < SLICE_MIN || this.#limit - this.#base <= CACHE_SLICE_MAX_MESSAGE)) {
      for (let i = 0; i < n; i++) cacheBytes[o + i] = b[p + i]!
      cacheStrings[slot] = s
    }
    return s
  }

  #decode (p: number, n: number): string {
    if (!this.#hasText) {
      this.#text = (this.buf as FastBuffer).latin1Slice(this.#base, this.#limit)
      this.#hasText = true
    }
    const a = p - this.#base
    let s = this.#text.substring(a, a + n)
    if (n <= SHORT_SCAN ? notPlainBytes(this.buf, p, p + n) : NOT_PLAIN.test(s)) {
      this.plain = false
      if (HIGH_BYTE.test(s)) s = (this.buf as FastBuffer).utf8Slice(p, p + n)
    } else {
      this.plain = true
    }
    return s
  }

  skip (wireType: number): void {
    switch (wireType) {
      case 0: this.varint(); break
      case 1: this.#advance(8); break
      case 2: this.#advance(this.length()); break
      case 5: this.#advance(4); break
      default: throw invalid(`unsupported wire type ${wireType}`, this.streamId)
    }
  }

  #advance (n: number): void {
    if (n > this.end - this.pos) throw invalid('field runs past the message', this.streamId)
    this.pos += n
  }
}

export const reader = new PbReader()

/** View any Uint8Array as a Buffer without copying. */
export function asBuffer (u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength)
}
