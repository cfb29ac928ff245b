/**
 * uwsgi request decoder for the app-server side: a push state machine over arbitrary chunks
 * (one byte at a time or the whole packet and body at once). Byte format in uwsgi.ts:
 *
 *   modifier1:u8 (must be 0) · datasize:u16le · modifier2:u8 · vars (datasize bytes) · body
 *
 * - The 4-byte header is checked at once: modifier1 ≠ 0 → FERRY_ERR_UWSGI_MODIFIER; datasize
 *   above `maxVarsSize` (default 65535; uWSGI's `buffer-size` is 4096) →
 *   FERRY_ERR_UWSGI_TOO_LARGE before a byte of vars is kept (uWSGI drops such a request
 *   silently with a bare RST; we say why).
 * - Vars: `u16le keylen · key · u16le vallen · value` until datasize is used up exactly; a
 *   length running past the block, a lone trailing byte, or a missing REQUEST_METHOD /
 *   REQUEST_URI+PATH_INFO → FERRY_ERR_UWSGI_VARS. A vars block inside one chunk is parsed
 *   in place; one split across chunks is copied once into a buffer of datasize bytes.
 * - Body: exactly CONTENT_LENGTH bytes (0 when empty or absent; not digits →
 *   FERRY_ERR_UWSGI_VARS), handed to onBody as views into the pushed chunks, then onEnd.
 *   Bytes after the body are not a second request (uwsgi is one request per connection):
 *   they are counted in `extraBytes` and dropped.
 * - `end()` (the peer closed) before the body is complete → FERRY_ERR_UWSGI_TRUNCATED.
 *
 * The RequestHead: method REQUEST_METHOD; path REQUEST_URI (else PATH_INFO + "?" +
 * QUERY_STRING); authority HTTP_HOST, else SERVER_NAME; scheme REQUEST_SCHEME, else "https"
 * when HTTPS is "on"/"1", else "http"; headers from HTTP_* vars (lower-case, '_' → '-', in
 * packet order) plus content-type / content-length from CONTENT_TYPE / CONTENT_LENGTH when
 * non-empty and no HTTP_ var gave them; transfer-encoding is left out of the headers (nginx
 * de-chunks bodies before sending them, so it would lie about the body; it stays in `vars`).
 * Values are read as latin1 (one byte, one char: the client's bytes), the path as UTF-8 when
 * it is valid UTF-8, else with its non-ASCII bytes %-encoded.
 */
import { isUtf8 } from 'node:buffer'
import { type FerryError, protocolError } from './errors.js'
import type { RequestHead } from './types.js'
import { UWSGI_HEADER_SIZE, UWSGI_MAX_VARS } from './uwsgi.js'

export interface UwsgiDecoderOptions {
  /** Largest vars block accepted (uWSGI's buffer-size). Default 65535, the most a packet can carry. */
  maxVarsSize?: number
}

export interface UwsgiHandlers {
  /** The request head and the raw vars `[key, value, …]` (for CGI-style consumers). */
  onHead (head: RequestHead, vars: string[], modifier2: number): void
  /** A piece of body: a view into a pushed chunk (copy it to keep it past a reused chunk). */
  onBody (chunk: Buffer): void
  /** The body is complete (right after onHead when there is none). */
  onEnd (): void
}

interface FastBuffer extends Buffer {
  latin1Slice (start: number, end: number): string
}

const S_HEADER = 0
const S_VARS = 1
const S_BODY = 2
const S_DONE = 3

export class UwsgiDecoder {
  readonly maxVarsSize: number
  #h: UwsgiHandlers
  #state = S_HEADER
  #hdr = Buffer.alloc(UWSGI_HEADER_SIZE)
  #hdrFill = 0
  #size = 0
  #modifier2 = 0
  #vars: Buffer | null = null
  #varsFill = 0
  #remaining = 0
  /** Bytes pushed so far. */
  bytesRead = 0
  /** Bytes that came after the body (dropped). */
  extraBytes = 0

  constructor (handlers: UwsgiHandlers, options: UwsgiDecoderOptions = {}) {
    this.#h = handlers
    this.maxVarsSize = Math.min(options.maxVarsSize ?? UWSGI_MAX_VARS, UWSGI_MAX_VARS)
  }

  /** True once onEnd has been called. */
  get done (): boolean {
    return this.#state === S_DONE
  }

  /** Feed bytes; throws a FerryError on malformed input (do not feed it again after that). */
  push (chunk: Buffer): void {
    this.bytesRead += chunk.length
    const n = chunk.length
    let off = 0
    while (off < n) {
      switch (this.#state) {
        case S_HEADER: {
          if (this.#hdrFill === 0 && n - off >= UWSGI_HEADER_SIZE) {
            this.#header(chunk, off)
            off += UWSGI_HEADER_SIZE
          } else {
            const take = Math.min(UWSGI_HEADER_SIZE - this.#hdrFill, n - off)
            chunk.copy(this.#hdr, this.#hdrFill, off, off + take)
            this.#hdrFill += take
            off += take
            if (this.#hdrFill < UWSGI_HEADER_SIZE) return
            this.#header(this.#hdr, 0)
          }
          if (n - off >= this.#size) {
            // fast path: the whole vars block is in this chunk
            const end = off + this.#size
            this.#head(chunk, off, end)
            off = end
          } else {
            this.#vars = Buffer.allocUnsafe(this.#size)
            this.#varsFill = 0
            this.#state = S_VARS
          }
          break
        }
        case S_VARS: {
          const v = this.#vars!
          const take = Math.min(v.length - this.#varsFill, n - off)
          chunk.copy(v, this.#varsFill, off, off + take)
          this.#varsFill += take
          off += take
          if (this.#varsFill === v.length) {
            this.#vars = null
            this.#head(v, 0, v.length)
          }
          break
        }
        case S_BODY: {
          const take = Math.min(this.#remaining, n - off)
          const piece = off === 0 && take === n ? chunk : chunk.subarray(off, off + take)
          off += take
          this.#remaining -= take
          if (this.#remaining === 0) this.#state = S_DONE
          this.#h.onBody(piece)
          if (this.#state === S_DONE) this.#h.onEnd()
          break
        }
        default:
          this.extraBytes += n - off
          return
      }
    }
  }

  /** The peer closed its side: throws FERRY_ERR_UWSGI_TRUNCATED unless the request is complete. */
  end (): void {
    if (this.#state === S_DONE) return
    throw this.#truncated()
  }

  #truncated (): FerryError {
    switch (this.#state) {
      case S_HEADER: return protocolError('FERRY_ERR_UWSGI_TRUNCATED', `${this.#hdrFill} of 4 header bytes`)
      case S_VARS: return protocolError('FERRY_ERR_UWSGI_TRUNCATED', `${this.#varsFill} of ${this.#size} vars bytes`)
      default: return protocolError('FERRY_ERR_UWSGI_TRUNCATED', `body ended ${this.#remaining} bytes short`)
    }
  }

  #header (b: Buffer, o: number): void {
    const modifier1 = b[o]!
    if (modifier1 !== 0) throw protocolError('FERRY_ERR_UWSGI_MODIFIER', `modifier1 ${modifier1}`)
    this.#size = b[o + 1]! | (b[o + 2]! << 8)
    this.#modifier2 = b[o + 3]!
    if (this.#size > this.maxVarsSize) {
      throw protocolError('FERRY_ERR_UWSGI_TOO_LARGE', `vars block of ${this.#size} bytes > buffer limit ${this.maxVarsSize}`)
    }
  }

  #head (b: Buffer, start: number, end: number): void {
    const vars = parseUwsgiVars(b, start, end)
    const head = uwsgiVarsToHead(vars)
    this.#remaining = head.bodyLength
    this.#state = head.bodyLength === 0 ? S_DONE : S_BODY
    this.#h.onHead(head, vars, this.#modifier2)
    if (this.#state === S_DONE) this.#h.onEnd()
  }
}

// Var keys repeat from request to request (the same params and header names): a small
// table keyed by a hash of the key bytes hands back the same string each time, so a key
// costs a hash and a compare instead of a new string (and Map lookups on it hit the
// string's cached hash).
const KEY_SLOTS = 256
const MAX_CACHED_KEY = 48
const keyBytes: Array<Uint8Array | undefined> = new Array(KEY_SLOTS)
const keyStrings: string[] = new Array(KEY_SLOTS).fill('')

function keyString (b: Buffer, k: number, kl: number): string {
  let h = kl
  for (let i = k; i < k + kl; i++) h = (Math.imul(h, 31) + b[i]!) | 0
  const slot = (h ^ (h >>> 11)) & (KEY_SLOTS - 1)
  const cached = keyBytes[slot]
  if (cached !== undefined && cached.length === kl) {
    let same = true
    for (let i = 0; i < kl; i++) {
      if (cached[i] !== b[k + i]) {
        same = false
        break
      }
    }
    if (same) return keyStrings[slot]!
  }
  const key = (b as FastBuffer).latin1Slice(k, k + kl)
  keyBytes[slot] = new Uint8Array(b.subarray(k, k + kl)) // a copy: the chunk may be reused
  keyStrings[slot] = key
  return key
}

/**
 * The vars of a uwsgi block as `[key, value, …]` (latin1 strings). Throws
 * FERRY_ERR_UWSGI_VARS when a length runs past the block or a lone byte is left over.
 */
export function parseUwsgiVars (b: Buffer, start = 0, end = b.length): string[] {
  const fb = b as FastBuffer
  const out: string[] = []
  let o = start
  while (o < end) {
    if (end - o < 2) throw protocolError('FERRY_ERR_UWSGI_VARS', `lone byte at offset ${o - start}`)
    const kl = b[o]! | (b[o + 1]! << 8)
    const k = o + 2
    if (k + kl + 2 > end) throw protocolError('FERRY_ERR_UWSGI_VARS', `key length ${kl} at offset ${o - start} runs past the block`)
    const vl = b[k + kl]! | (b[k + kl + 1]! << 8)
    const v = k + kl + 2
    if (v + vl > end) throw protocolError('FERRY_ERR_UWSGI_VARS', `value length ${vl} at offset ${k + kl - start} runs past the block`)
    out.push(kl <= MAX_CACHED_KEY ? keyString(b, k, kl) : fb.latin1Slice(k, k + kl), fb.latin1Slice(v, v + vl))
    o = v + vl
  }
  return out
}

// "HTTP_ACCEPT_LANGUAGE" → "accept-language", cached (header names repeat across requests).
const NAMES = new Map<string, string>()
function headerName (key: string): string {
  let name = NAMES.get(key)
  if (name === undefined) {
    name = key.slice(5).toLowerCase().replaceAll('_', '-')
    if (NAMES.size >= 1024) NAMES.clear()
    NAMES.set(key, name)
  }
  return name
}

function hasHigh (s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return true
  return false
}

/** A path's bytes as a string: ASCII as is, valid UTF-8 decoded, else non-ASCII bytes %-encoded. */
function pathText (latin1: string): string {
  if (!hasHigh(latin1)) return latin1
  const bytes = Buffer.from(latin1, 'latin1')
  if (isUtf8(bytes)) return bytes.toString('utf8')
  let s = ''
  for (const c of bytes) s += c < 0x80 ? String.fromCharCode(c) : `%${c.toString(16).toUpperCase().padStart(2, '0')}`
  return s
}

function digits (s: string): boolean {
  if (s.length === 0 || s.length > 15) return false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/** The RequestHead for parsed vars (see the file comment for the mapping). */
export function uwsgiVarsToHead (vars: string[]): RequestHead {
  let method = ''
  let requestUri: string | undefined
  let pathInfo: string | undefined
  let query = ''
  let contentType = ''
  let contentLength = ''
  let scheme = ''
  let https = ''
  let host: string | undefined
  let serverName = ''
  let remoteAddress = ''
  let remotePort = ''
  let serverPort = ''
  let protocol = ''
  let requestId = ''
  let sawType = false
  let sawLength = false
  const headers: string[] = []
  for (let i = 0; i < vars.length; i += 2) {
    const key = vars[i]!
    const value = vars[i + 1]!
    if (key.charCodeAt(0) === 72 && key.startsWith('HTTP_')) { // 'H'
      if (key === 'HTTP_HOST') {
        if (value === '') continue // nginx's $host for a request without Host (HTTP/1.0)
        if (host === undefined) host = value
      } else if (key === 'HTTP_TRANSFER_ENCODING') {
        continue
      } else if (key === 'HTTP_CONTENT_TYPE') {
        sawType = true
      } else if (key === 'HTTP_CONTENT_LENGTH') {
        sawLength = true
      } else if (key === 'HTTP_X_REQUEST_ID') {
        if (requestId === '') requestId = value
      }
      headers.push(headerName(key), value)
      continue
    }
    switch (key) {
      case 'REQUEST_METHOD': method = value; break
      case 'REQUEST_URI': requestUri = value; break
      case 'PATH_INFO': pathInfo = value; break
      case 'QUERY_STRING': query = value; break
      case 'CONTENT_TYPE': contentType = value; break
      case 'CONTENT_LENGTH': contentLength = value; break
      case 'REQUEST_SCHEME': scheme = value; break
      case 'HTTPS': https = value; break
      case 'SERVER_NAME': serverName = value; break
      case 'REMOTE_ADDR': remoteAddress = value; break
      case 'REMOTE_PORT': remotePort = value; break
      case 'SERVER_PORT': serverPort = value; break
      case 'SERVER_PROTOCOL': protocol = value; break
    }
  }
  if (method === '') throw protocolError('FERRY_ERR_UWSGI_VARS', 'no REQUEST_METHOD')
  let path: string
  if (requestUri !== undefined && requestUri !== '') {
    path = pathText(requestUri)
  } else if (pathInfo !== undefined && pathInfo !== '') {
    path = pathText(pathInfo)
    if (query !== '') path += `?${query}`
  } else {
    throw protocolError('FERRY_ERR_UWSGI_VARS', 'no REQUEST_URI or PATH_INFO')
  }
  let bodyLength = 0
  if (contentLength !== '') {
    if (!digits(contentLength)) throw protocolError('FERRY_ERR_UWSGI_VARS', `CONTENT_LENGTH ${JSON.stringify(contentLength.slice(0, 32))}`)
    bodyLength = Number(contentLength)
    if (!sawLength) headers.push('content-length', contentLength)
  }
  if (contentType !== '' && !sawType) headers.push('content-type', contentType)
  if (scheme === '') scheme = https === 'on' || https === 'ON' || https === '1' ? 'https' : 'http'
  return {
    method,
    path,
    authority: host !== undefined && host !== '' ? host : serverName,
    scheme,
    headers,
    remoteAddress,
    remotePort: digits(remotePort) ? Number(remotePort) : 0,
    requestId,
    bodyLength,
    serverName,
    serverPort: digits(serverPort) ? Number(serverPort) : 0,
    protocol: protocol === '' ? 'HTTP/1.0' : protocol
  }
}
