/**
 * Protobuf writing for the per-request hot path (the request and response heads). The
 * generated protobufjs code (gen/ferry.js) builds a message object and a Writer operation
 * list per field; for a 12-header head that costs more than JSON. These write the same bytes
 * (fields in number order, proto3 defaults omitted — a test compares them with the generated
 * encoder) straight into a shared slab.
 *
 * A message is written in one go: slab.reserve(max) makes room for the most it can take, then
 * the field writers take the buffer and a position and return the next position (no bounds
 * check per write, no object state per byte), and slab.view()/finish() hand out the bytes.
 */

// Buffer's own utf8Write (stable since Node 0.x, used by protobufjs and ws) skips the
// argument normalisation of write(): a measurable share of a head's cost.
interface FastBuffer extends Buffer {
  utf8Write (s: string, offset: number): number
}

/**
 * Strings up to this many chars are written by a JS loop when all ASCII: a call into
 * utf8Write costs ~45 ns whatever the length, the loop ~1.7 ns a char (Node 20).
 */
const SHORT = 24

/** Most bytes a string field takes: tag, a length of up to 5 bytes, up to 3 bytes a char. */
export function stringRoom (s: string): number {
  return 3 * s.length + 6
}
/** Most bytes a varint field takes: tag and up to 10 bytes. */
export const VARINT_ROOM = 11

const SLAB_SIZE = 16 * 1024
/** view() keeps its Buffer objects for lengths below this. */
const VIEW_CACHE_MAX = 1024

/**
 * Where heads are written. finish() hands out the written bytes as a view and moves `pos`
 * past them (no copy: Buffer.allocUnsafe's pool does the same for small buffers); view()
 * leaves `pos`, so the next encode writes over the same bytes. A head that does not fit in
 * what is left of the slab goes to a fresh one.
 */
class Slab {
  buf: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE)
  /** Where the next message starts. */
  pos = 0
  /**
   * view() results of this slab by length, with the position each was cut at (a Buffer
   * object costs ~40 ns); emptied when the slab is replaced, so no old slab stays alive.
   */
  #views: (Buffer | undefined)[] = new Array<Buffer | undefined>(VIEW_CACHE_MAX)
  #viewsAt = new Int32Array(VIEW_CACHE_MAX)

  /** Room for a message of at most `max` bytes at `pos`; returns the buffer to write into. */
  reserve (max: number): Buffer {
    if (this.pos + max > this.buf.length) {
      this.buf = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, max))
      this.pos = 0
      this.#views.fill(undefined)
    }
    return this.buf
  }

  /**
   * The message written from `pos` to `end`, valid only until the next encode (copy it at
   * once). A later view() of the same length may return the same Buffer object.
   */
  view (end: number): Buffer {
    const n = end - this.pos
    if (n >= VIEW_CACHE_MAX) return this.buf.subarray(this.pos, end)
    const v = this.#views[n]
    if (v !== undefined && this.#viewsAt[n] === this.pos) return v
    this.#viewsAt[n] = this.pos
    return (this.#views[n] = this.buf.subarray(this.pos, end))
  }

  /** The message written from `pos` to `end`, as a buffer of its own: later encodes write past it. */
  finish (end: number): Buffer {
    const out = this.buf.subarray(this.pos, end)
    this.pos = (end + 7) & ~7
    return out
  }
}

export const slab = new Slab()

export function writeVarint (b: Buffer, p: number, v: number): number {
  if (v <= 0xffffffff) {
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
  } else {
    while (v > 0x7f) {
      b[p++] = (v % 128) | 0x80
      v = Math.floor(v / 128)
    }
  }
  b[p++] = v
  return p
}

/** A varint field, left out when v is 0 (the proto3 default). */
export function writeUintField (b: Buffer, p: number, tag: number, v: number): number {
  if (v === 0) return p
  b[p] = tag
  return writeVarint(b, p + 1, v)
}

/** An sint64 field (zigzag varint, safe integers), left out when v is 0. */
export function writeSintField (b: Buffer, p: number, tag: number, v: number): number {
  if (v === 0) return p
  b[p] = tag
  return writeVarint(b, p + 1, v >= 0 ? v * 2 : -v * 2 - 1)
}

/**
 * A string field, left out when empty. Writes the bytes one byte after the tag, then the
 * length (moving the bytes when the length needs more than one byte).
 */
export function writeStringField (b: Buffer, p: number, tag: number, s: string): number {
  const n = s.length
  if (n === 0) return p
  b[p] = tag
  const start = p + 2
  if (n <= SHORT) {
    let q = start
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      b[q++] = c
    }
    if (i === n) {
      b[p + 1] = n // under 0x80: the one-byte length the field has room for
      return q
    }
  }
  return endField(b, start, start + (b as FastBuffer).utf8Write(s, start))
}

/** A nested message: its tag and one byte for its length; returns where its body starts (for endField). */
export function beginField (b: Buffer, p: number, tag: number): number {
  b[p] = tag
  return p + 2
}

/**
 * The bytes from `start` to `end` are a field's body with one byte reserved for its length at
 * start - 1: write the length (moving the body when it needs more bytes); returns the new end.
 */
export function endField (b: Buffer, start: number, end: number): number {
  const n = end - start
  if (n < 0x80) {
    b[start - 1] = n
    return end
  }
  let extra = 0
  for (let v = n >>> 7; v > 0; v >>>= 7) extra++
  b.copyWithin(start + extra, start, end)
  writeVarint(b, start - 1, n)
  return end + extra
}

/**
 * The encoded bytes of strings that repeat from one head to the next (the scheme, the server
 * name, a response's content-type …), by slot: copying bytes costs less than reading chars.
 * A string enters its slot the second time in a row it is written there, and only when it is
 * ASCII (its bytes are its chars) and short; an entry is used only for a string equal to it.
 */
export const WRITE_CACHE_SLOTS = 128
const WRITE_CACHE_MAX = 64
const cachedBytes = Buffer.alloc(WRITE_CACHE_SLOTS * WRITE_CACHE_MAX)
/** The string whose bytes each slot holds. */
const cachedString: string[] = new Array<string>(WRITE_CACHE_SLOTS).fill('')
/** The string last written through each slot (a candidate for it). */
const lastString: string[] = new Array<string>(WRITE_CACHE_SLOTS).fill('')

/** writeStringField, copying the bytes from cache slot `slot` when `s` is the string held there. */
export function writeCachedStringField (b: Buffer, p: number, tag: number, s: string, slot: number): number {
  const n = s.length
  if (n === 0) return p
  const o = slot * WRITE_CACHE_MAX
  if (s === cachedString[slot]) {
    b[p++] = tag
    b[p++] = n
    for (let i = 0; i < n; i++) b[p++] = cachedBytes[o + i]!
    return p
  }
  const end = writeStringField(b, p, tag, s)
  if (n <= WRITE_CACHE_MAX && end - p === n + 2) { // one byte a char: ASCII
    if (s === lastString[slot]) {
      for (let i = 0; i < n; i++) cachedBytes[o + i] = b[p + 2 + i]!
      cachedString[slot] = s
    } else {
      lastString[slot] = s
    }
  }
  return end
}
