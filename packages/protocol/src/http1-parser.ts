/**
 * HTTP/1.x response parser for the front side: reads what a uWSGI node (or ferry's
 * app-server over uwsgi) answers. A push state machine over arbitrary chunks.
 *
 *   head = ( status-line | CGI header lines ) CRLF-terminated header lines · CRLF
 *   status-line = "HTTP/1." DIGIT SP 3DIGIT [ SP reason ]
 *
 * - Status: from the status line; without one (the first line does not start with "HTTP/"),
 *   CGI style as nginx does: a `Status: NNN reason` header (taken out of the header list),
 *   else 302 when a Location header is present, else 200.
 * - Headers: a flat list with lower-case names, order and repeats kept (several Set-Cookie);
 *   values trimmed of SP/HTAB, read as latin1. A name that is not a token, whitespace before
 *   the colon, obsolete line folding, or a control char in a value → FERRY_ERR_HTTP1_PARSE.
 *   Lines may end in CRLF or a bare LF.
 * - Head larger than `maxHeadSize` (default 64 KiB) → FERRY_ERR_HTTP1_HEAD_TOO_LARGE, checked
 *   before more than maxHeadSize + 1 bytes are kept. A head inside one chunk is parsed in
 *   place; one split across chunks is collected in one growing buffer.
 * - Body: none for a HEAD request (`method`), 204 and 304; 1xx other than 101 are
 *   informational (onInformational) and the real head follows; after 101 every byte is
 *   passed on until close (a tunnel). Otherwise Transfer-Encoding ending in chunked → decoded
 *   (chunk extensions skipped, trailers handed to onEnd); another Transfer-Encoding → until
 *   close; Content-Length (digits; repeats must agree; together with Transfer-Encoding →
 *   FERRY_ERR_HTTP1_PARSE) → exactly that many bytes; none → until the connection closes.
 *   ResponseHead.bodyLength is N, 0, or -1 (chunked or until close).
 * - Body bytes go to onBody as views into the pushed chunks, never copied.
 * - `end()` (upstream closed) completes an until-close body; before a declared length, the
 *   last chunk or the end of the head → FERRY_ERR_HTTP1_TRUNCATED.
 * - Bytes after a complete response are counted in `extraBytes` and dropped (uwsgi answers
 *   one request per connection).
 */
import { protocolError } from './errors.js'
import type { HeaderList, ResponseHead } from './types.js'

export interface Http1ResponseHandlers {
  /** The final response head and its reason phrase. */
  onHead (head: ResponseHead, reason: string): void
  /** A piece of body: a view into a pushed chunk. */
  onBody (chunk: Buffer): void
  /** The response is complete; trailers of a chunked body (else empty). */
  onEnd (trailers: HeaderList): void
  /** A 1xx response other than 101 (100 Continue, 103 Early Hints): the real head follows. */
  onInformational? (status: number, headers: HeaderList): void
}

export interface Http1ParserOptions {
  /** Largest head (and trailer section) accepted, bytes. Default 65536. */
  maxHeadSize?: number
  /** The request's method: 'HEAD' means the response has no body. */
  method?: string
}

interface FastBuffer extends Buffer {
  latin1Slice (start: number, end: number): string
}

const S_HEAD = 0
const S_LENGTH = 1
const S_CLOSE = 2
const S_CHUNK_SIZE = 3
const S_CHUNK_EXT = 4
const S_CHUNK_SIZE_LF = 5
const S_CHUNK_DATA = 6
const S_CHUNK_DATA_CR = 7
const S_CHUNK_DATA_LF = 8
const S_TRAILERS = 9
const S_DONE = 10

const MAX_CHUNK_EXT = 4096
const MAX_HEX_DIGITS = 13 // 16^13 > 2^52: keeps the size a safe integer

// RFC 9110 tchar
const TCHAR = new Uint8Array(256)
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1

function hexDigit (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const l = c | 0x20
  if (l >= 97 && l <= 102) return l - 87
  return -1
}

function parseError (why: string): Error {
  return protocolError('FERRY_ERR_HTTP1_PARSE', why)
}

export class Http1ResponseParser {
  readonly maxHeadSize: number
  /** The request method; set before the head arrives. 'HEAD' → no body. */
  method: string
  #h: Http1ResponseHandlers
  #state = S_HEAD
  #acc: Buffer | null = null
  #accLen = 0
  #scan = 0
  #remaining = 0
  #digits = 0
  #extLen = 0
  #started = false
  /** Bytes pushed so far. */
  bytesRead = 0
  /** Bytes after a complete response (dropped). */
  extraBytes = 0

  constructor (handlers: Http1ResponseHandlers, options: Http1ParserOptions = {}) {
    this.#h = handlers
    this.maxHeadSize = options.maxHeadSize ?? 65536
    this.method = options.method ?? 'GET'
  }

  /** True once onEnd has been called. */
  get done (): boolean {
    return this.#state === S_DONE
  }

  /** Feed bytes; throws a FerryError on malformed input (do not feed it again after that). */
  push (chunk: Buffer): void {
    this.bytesRead += chunk.length
    if (chunk.length > 0) this.#started = true
    const n = chunk.length
    let off = 0
    while (off < n) {
      switch (this.#state) {
        case S_HEAD:
        case S_TRAILERS: {
          const end = this.#section(chunk, off)
          if (end < 0) return
          off = end
          break
        }
        case S_LENGTH:
        case S_CHUNK_DATA: {
          const take = Math.min(this.#remaining, n - off)
          const piece = off === 0 && take === n ? chunk : chunk.subarray(off, off + take)
          off += take
          this.#remaining -= take
          if (this.#remaining === 0) this.#state = this.#state === S_LENGTH ? S_DONE : S_CHUNK_DATA_CR
          this.#h.onBody(piece)
          if (this.#state === S_DONE) this.#h.onEnd([])
          break
        }
        case S_CLOSE: {
          const piece = off === 0 ? chunk : chunk.subarray(off)
          off = n
          this.#h.onBody(piece)
          break
        }
        case S_CHUNK_SIZE: {
          const c = chunk[off++]!
          const d = hexDigit(c)
          if (d >= 0) {
            if (++this.#digits > MAX_HEX_DIGITS) throw parseError('chunk size too large')
            this.#remaining = this.#remaining * 16 + d
          } else if (this.#digits === 0) {
            throw parseError('chunk size expected')
          } else if (c === 13) {
            this.#state = S_CHUNK_SIZE_LF
          } else if (c === 10) {
            this.#chunkLine()
          } else if (c === 59 || c === 32 || c === 9) { // ';' or whitespace before one
            this.#extLen = 0
            this.#state = S_CHUNK_EXT
          } else {
            throw parseError(`bad byte 0x${c.toString(16)} in chunk size`)
          }
          break
        }
        case S_CHUNK_EXT: {
          const c = chunk[off++]!
          if (c === 13) this.#state = S_CHUNK_SIZE_LF
          else if (c === 10) this.#chunkLine()
          else if (++this.#extLen > MAX_CHUNK_EXT) throw parseError('chunk extension too long')
          break
        }
        case S_CHUNK_SIZE_LF: {
          if (chunk[off++] !== 10) throw parseError('CR without LF after chunk size')
          this.#chunkLine()
          break
        }
        case S_CHUNK_DATA_CR: {
          const c = chunk[off++]!
          if (c === 13) this.#state = S_CHUNK_DATA_LF
          else if (c === 10) this.#nextChunk()
          else throw parseError('chunk data not followed by CRLF')
          break
        }
        case S_CHUNK_DATA_LF: {
          if (chunk[off++] !== 10) throw parseError('chunk data not followed by CRLF')
          this.#nextChunk()
          break
        }
        default:
          this.extraBytes += n - off
          return
      }
    }
  }

  /** Upstream closed: ends an until-close body; throws FERRY_ERR_HTTP1_TRUNCATED otherwise. */
  end (): void {
    switch (this.#state) {
      case S_DONE: return
      case S_CLOSE:
        this.#state = S_DONE
        this.#h.onEnd([])
        return
      case S_HEAD:
        throw protocolError('FERRY_ERR_HTTP1_TRUNCATED', this.#started ? 'closed inside the response head' : 'closed without a response')
      case S_LENGTH:
        throw protocolError('FERRY_ERR_HTTP1_TRUNCATED', `closed ${this.#remaining} bytes before Content-Length`)
      default:
        throw protocolError('FERRY_ERR_HTTP1_TRUNCATED', 'closed before the last chunk')
    }
  }

  #nextChunk (): void {
    this.#state = S_CHUNK_SIZE
    this.#remaining = 0
    this.#digits = 0
  }

  #chunkLine (): void {
    if (this.#remaining === 0) {
      this.#state = S_TRAILERS
      this.#accLen = 0
      this.#scan = 0
    } else {
      this.#state = S_CHUNK_DATA
    }
  }

  /**
   * Collects a head or trailer section up to its blank line. Returns the offset in `chunk`
   * just past the section once it is complete (after handling it), or -1 when more is needed.
   */
  #section (chunk: Buffer, off: number): number {
    const max = this.maxHeadSize
    if (this.#accLen === 0) {
      const end = this.#findEnd(chunk, off, chunk.length)
      if (end >= 0) {
        if (end - off > max) throw this.#tooLarge()
        this.#complete(chunk, off, end)
        return end
      }
      if (chunk.length - off > max) throw this.#tooLarge()
      this.#scan -= off
      this.#append(chunk, off, chunk.length)
      return -1
    }
    const prev = this.#accLen
    const take = Math.min(chunk.length - off, max + 1 - prev)
    this.#append(chunk, off, off + take)
    const acc = this.#acc!.subarray(0, this.#accLen)
    const end = this.#findEnd(acc, this.#scan, acc.length)
    if (end >= 0) {
      if (end > max) throw this.#tooLarge()
      this.#accLen = 0
      this.#complete(acc, 0, end)
      return off + (end - prev)
    }
    if (this.#accLen > max) throw this.#tooLarge()
    return -1
  }

  #tooLarge (): Error {
    const what = this.#state === S_HEAD ? 'head' : 'trailer section'
    return protocolError('FERRY_ERR_HTTP1_HEAD_TOO_LARGE', `${what} over ${this.maxHeadSize} bytes`)
  }

  #append (src: Buffer, from: number, to: number): void {
    const len = to - from
    let acc = this.#acc
    if (acc === null || acc.length < this.#accLen + len) {
      const next = Buffer.allocUnsafe(Math.max(1024, (this.#accLen + len) * 2))
      if (acc !== null) acc.copy(next, 0, 0, this.#accLen)
      this.#acc = acc = next
    }
    src.copy(acc, this.#accLen, from, to)
    this.#accLen += len
  }

  /** Index just past the first blank line at or after `from`, or -1 (with #scan = start of the open line). */
  #findEnd (b: Buffer, from: number, to: number): number {
    let line = from
    for (;;) {
      const i = b.indexOf(10, line)
      if (i < 0 || i >= to) {
        this.#scan = line
        return -1
      }
      if (i === line || (i === line + 1 && b[line] === 13)) return i + 1
      line = i + 1
    }
  }

  #complete (b: Buffer, start: number, end: number): void {
    if (this.#state === S_TRAILERS) {
      const trailers: string[] = []
      parseFields(b, start, end, trailers)
      this.#state = S_DONE
      this.#h.onEnd(trailers)
    } else {
      this.#head(b, start, end)
    }
  }

  #head (b: Buffer, start: number, end: number): void {
    const fb = b as FastBuffer
    let status = 0
    let reason = ''
    let p = start
    const headers: string[] = []
    if (b[start] === 10 || (b[start] === 13 && b[start + 1] === 10)) throw parseError('empty line instead of a response head')
    // status line: "HTTP/1.x NNN reason"
    if (end - start >= 5 && b[start] === 72 && b[start + 1] === 84 && b[start + 2] === 84 && b[start + 3] === 80 && b[start + 4] === 47) {
      const lf = b.indexOf(10, start)
      const lineEnd = b[lf - 1] === 13 ? lf - 1 : lf
      if (lineEnd - start < 12 || b[start + 5] !== 49 || b[start + 6] !== 46 || !isDigit(b[start + 7]!) || b[start + 8] !== 32 ||
        !isDigit(b[start + 9]!) || !isDigit(b[start + 10]!) || !isDigit(b[start + 11]!) || (lineEnd - start > 12 && b[start + 12] !== 32)) {
        throw parseError(`bad status line ${JSON.stringify(fb.latin1Slice(start, Math.min(lineEnd, start + 64)))}`)
      }
      status = (b[start + 9]! - 48) * 100 + (b[start + 10]! - 48) * 10 + (b[start + 11]! - 48)
      reason = lineEnd - start > 13 ? fb.latin1Slice(start + 13, lineEnd) : ''
      p = lf + 1
    }
    parseFields(b, p, end, headers)
    if (p === start) {
      // CGI style: Status header, else Location → 302, else 200
      status = 200
      reason = 'OK'
      let location = false
      let at = -1
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!
        if (name === 'status' && at < 0) at = i
        else if (name === 'location') location = true
      }
      if (at >= 0) {
        const v = headers[at + 1]!
        if (!(v.length >= 3 && isDigit(v.charCodeAt(0)) && isDigit(v.charCodeAt(1)) && isDigit(v.charCodeAt(2)) && (v.length === 3 || v.charCodeAt(3) === 32))) {
          throw parseError(`bad Status header ${JSON.stringify(v.slice(0, 64))}`)
        }
        status = Number(v.slice(0, 3))
        reason = v.slice(4).trim()
        headers.splice(at, 2)
      } else if (location) {
        status = 302
        reason = 'Moved Temporarily'
      }
    }
    if (status < 100) throw parseError(`status ${status}`)
    this.#framing(status, reason, headers)
  }

  #framing (status: number, reason: string, headers: string[]): void {
    if (status < 200 && status !== 101) {
      this.#h.onInformational?.(status, headers)
      this.#state = S_HEAD
      return
    }
    if (status === 101) {
      this.#emit(status, reason, headers, -1, S_CLOSE)
      return
    }
    if (this.method === 'HEAD' || status === 204 || status === 304) {
      this.#emit(status, reason, headers, 0, S_DONE)
      return
    }
    let te = ''
    let cl = ''
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!
      if (name === 'transfer-encoding') {
        te = te === '' ? headers[i + 1]! : `${te}, ${headers[i + 1]!}`
      } else if (name === 'content-length') {
        const v = headers[i + 1]!
        if (!isDigits(v)) throw parseError(`bad Content-Length ${JSON.stringify(v.slice(0, 32))}`)
        if (cl !== '' && Number(cl) !== Number(v)) throw parseError('conflicting Content-Length headers')
        cl = v
      }
    }
    if (te !== '') {
      if (cl !== '') throw parseError('both Transfer-Encoding and Content-Length')
      const comma = te.lastIndexOf(',')
      const last = (comma < 0 ? te : te.slice(comma + 1)).trim().toLowerCase()
      if (last === 'chunked') this.#nextChunk()
      this.#emit(status, reason, headers, -1, last === 'chunked' ? S_CHUNK_SIZE : S_CLOSE)
    } else if (cl !== '') {
      const len = Number(cl)
      this.#remaining = len
      this.#emit(status, reason, headers, len, len === 0 ? S_DONE : S_LENGTH)
    } else {
      this.#emit(status, reason, headers, -1, S_CLOSE)
    }
  }

  #emit (status: number, reason: string, headers: string[], bodyLength: number, next: number): void {
    this.#state = next
    this.#h.onHead({ status, headers, bodyLength }, reason)
    if (next === S_DONE) this.#h.onEnd([])
  }
}

function isDigit (c: number): boolean {
  return c >= 48 && c <= 57
}

function isDigits (s: string): boolean {
  if (s.length === 0 || s.length > 15) return false
  for (let i = 0; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false
  return true
}

/**
 * Header lines in b[start, end) (ending with the blank line) into `out` as lower-case
 * name, trimmed value pairs. Throws FERRY_ERR_HTTP1_PARSE on a malformed line.
 */
export function parseFields (b: Buffer, start: number, end: number, out: string[]): void {
  const fb = b as FastBuffer
  let p = start
  while (p < end) {
    const lf = b.indexOf(10, p)
    const lineEnd = lf > p && b[lf - 1] === 13 ? lf - 1 : lf
    if (lineEnd === p) return // the blank line
    const first = b[p]!
    if (first === 32 || first === 9) throw parseError('obsolete line folding')
    let colon = p
    while (colon < lineEnd && TCHAR[b[colon]!] === 1) colon++
    if (colon === p || colon === lineEnd || b[colon] !== 58) {
      throw parseError(`bad header line ${JSON.stringify(fb.latin1Slice(p, Math.min(lineEnd, p + 64)))}`)
    }
    let vs = colon + 1
    let ve = lineEnd
    while (vs < ve && (b[vs] === 32 || b[vs] === 9)) vs++
    while (ve > vs && (b[ve - 1] === 32 || b[ve - 1] === 9)) ve--
    for (let i = vs; i < ve; i++) {
      const c = b[i]!
      if ((c < 32 && c !== 9) || c === 127) throw parseError(`control byte 0x${c.toString(16)} in a header value`)
    }
    out.push(fb.latin1Slice(p, colon).toLowerCase(), fb.latin1Slice(vs, ve))
    p = lf + 1
  }
}
