/**
 * uwsgi request encoder (modifier1 = 0), byte for byte what nginx's `uwsgi_pass` with
 * Debian's /etc/nginx/uwsgi_params sends (checked against captured bytes in
 * test/interop/nginx-golden.test.ts; docs/dev/uwsgi-notes.md has hex dumps).
 *
 *   packet  = header vars body
 *   header  = modifier1:u8 (0) · datasize:u16le (size of vars only) · modifier2:u8 (0)
 *   vars    = { keylen:u16le · key · vallen:u16le · value }*
 *   body    = exactly CONTENT_LENGTH bytes (written by the caller after the packet; never copied)
 *
 * Vars, in nginx's order: QUERY_STRING, REQUEST_METHOD, CONTENT_TYPE, CONTENT_LENGTH,
 * REQUEST_URI, PATH_INFO (the path percent-decoded, slashes merged, dot segments resolved:
 * nginx's $document_uri), DOCUMENT_ROOT, SERVER_PROTOCOL, REQUEST_SCHEME, HTTPS ("on", only
 * for https), REMOTE_ADDR, REMOTE_PORT, SERVER_PORT, SERVER_NAME, then — Debian's addition,
 * `uwsgi_param HTTP_HOST $host` — HTTP_HOST (the authority lower-cased without port or
 * trailing dot), then every client header as HTTP_<NAME> (a-z upper-cased, '-' → '_') in
 * client order, except Host when HTTP_HOST was sent as a param (nginx skips a header that a
 * param already names). A head with a requestId adds HTTP_X_REQUEST_ID after HTTP_HOST and
 * drops the client's X-Request-Id — what `uwsgi_param HTTP_X_REQUEST_ID $request_id;` after
 * the include gives in nginx — so the trusted id reaches the app (nginx sends none by default).
 *
 * The one deliberate difference from the installed nginx 1.22: a repeated header is sent as
 * one var, values joined with ", " ("; " for Cookie) at the first occurrence's place, as
 * nginx ≥ 1.23 does — uWSGI keeps only the last of repeated vars. `repeatedHeaders:
 * 'repeat'` gives 1.22's bytes. Known differences nginx would answer with 400 instead: a
 * path whose dot segments climb above "/" is clamped at "/", and an invalid %-escape (or
 * %00) is left as is in PATH_INFO.
 *
 * Strings: paths and query are written as UTF-8; header values and the other params as
 * latin1 (one char, one byte — what Node's HTTP parser hands out, so the client's bytes go
 * through unchanged), or UTF-8 for a string holding a char above U+00FF.
 * A vars block past 65535 bytes throws FERRY_ERR_UWSGI_ENCODE_TOO_LARGE (never a silent
 * 16-bit wrap: unbit/uwsgi#324, CVE-2020-11984); a streamed body of unknown length
 * (bodyLength -1) throws FERRY_ERR_UWSGI_LENGTH_REQUIRED: uwsgi needs CONTENT_LENGTH up front.
 */
import { protocolError } from './errors.js'
import type { RequestHead } from './types.js'

export const UWSGI_HEADER_SIZE = 4
/** Largest vars block the u16 datasize can describe. */
export const UWSGI_MAX_VARS = 65535

export interface UwsgiEncodeOptions {
  /** DOCUMENT_ROOT: nginx's $document_root (the location's `root`). Default ''. */
  documentRoot?: string
  /** SERVER_NAME: nginx's $server_name ('' when no server_name is set). Default head.serverName. */
  serverName?: string
  /**
   * Send HTTP_HOST as a param right after SERVER_NAME with nginx's $host value, and skip the
   * client's Host header (Debian's uwsgi_params; default true). false: Host travels as a
   * plain client header in its place (upstream nginx's uwsgi_params).
   */
  hostParam?: boolean
  /** 'join' (default, nginx ≥ 1.23) or 'repeat' (one var per occurrence, nginx ≤ 1.22). */
  repeatedHeaders?: 'join' | 'repeat'
}

interface FastBuffer extends Buffer {
  latin1Write (s: string, offset: number): number
  utf8Write (s: string, offset: number): number
}

/** A param key with its u16le length in front, written with one TypedArray.set. */
const K = (s: string): Uint8Array => {
  const b = new Uint8Array(2 + s.length)
  b[0] = s.length & 0xff
  b[1] = s.length >>> 8
  for (let i = 0; i < s.length; i++) b[2 + i] = s.charCodeAt(i)
  return b
}
const KEY_QUERY_STRING = K('QUERY_STRING')
const KEY_REQUEST_METHOD = K('REQUEST_METHOD')
const KEY_CONTENT_TYPE = K('CONTENT_TYPE')
const KEY_CONTENT_LENGTH = K('CONTENT_LENGTH')
const KEY_REQUEST_URI = K('REQUEST_URI')
const KEY_PATH_INFO = K('PATH_INFO')
const KEY_DOCUMENT_ROOT = K('DOCUMENT_ROOT')
const KEY_SERVER_PROTOCOL = K('SERVER_PROTOCOL')
const KEY_REQUEST_SCHEME = K('REQUEST_SCHEME')
const KEY_HTTPS = K('HTTPS')
const KEY_REMOTE_ADDR = K('REMOTE_ADDR')
const KEY_REMOTE_PORT = K('REMOTE_PORT')
const KEY_SERVER_PORT = K('SERVER_PORT')
const KEY_SERVER_NAME = K('SERVER_NAME')
const KEY_HTTP_HOST = K('HTTP_HOST')
const KEY_HTTP_X_REQUEST_ID = K('HTTP_X_REQUEST_ID')
/** Fixed cost of a header var besides key and value: two u16 lengths. */
const VAR_OVERHEAD = 4
/** A param's value length (its key constant already holds the key length). */
const VALUE_LEN = 2
const HTTP_ = 5
const HTTP_PREFIX = new Uint8Array([72, 84, 84, 80, 95]) // "HTTP_"

const NON_LATIN1 = /[^\0-\xff]/

/** Byte length of a latin1-or-UTF-8 string (see the file comment); negative = write as UTF-8. */
function textLen (s: string): number {
  const u = Buffer.byteLength(s, 'utf8')
  if (u === s.length) return u // ASCII: latin1 and UTF-8 agree
  return NON_LATIN1.test(s) ? -u : s.length
}

/**
 * nginx's $host for an authority: lower-case, port and one trailing dot removed
 * ("Example.Test:8080" → "example.test", "[::1]:80" → "[::1]").
 */
export function nginxHost (authority: string): string {
  let end = authority.length
  if (authority.charCodeAt(0) === 91) { // '[' IPv6 literal
    const close = authority.indexOf(']')
    if (close > 0) end = close + 1
  } else {
    const colon = authority.indexOf(':')
    if (colon >= 0) end = colon
  }
  if (end > 0 && authority.charCodeAt(end - 1) === 46) end-- // trailing '.'
  const host = end === authority.length ? authority : authority.slice(0, end)
  return host.toLowerCase()
}

function hexVal (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  const l = c | 0x20
  if (l >= 97 && l <= 102) return l - 87
  return -1
}

/**
 * nginx's $document_uri for a path (no query): %XX decoded to bytes, "//" merged, "." and
 * ".." segments resolved (a trailing one leaves a trailing "/"). Returns the path itself when
 * there is nothing to do (the common case), else the decoded bytes.
 */
export function nginxPathInfo (path: string): string | Buffer {
  if (path.charCodeAt(0) !== 47 || (path.indexOf('%') < 0 && path.indexOf('//') < 0 && path.indexOf('/.') < 0)) return path
  const src = Buffer.from(path, 'utf8')
  const dec = Buffer.allocUnsafe(src.length)
  let n = 0
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!
    if (c === 37 && i + 2 < src.length) { // '%'
      const hi = hexVal(src[i + 1]!)
      const lo = hexVal(src[i + 2]!)
      const v = (hi << 4) | lo
      if (hi >= 0 && lo >= 0 && v !== 0) {
        dec[n++] = v
        i += 2
        continue
      }
    }
    dec[n++] = c
  }
  // resolve segments over the decoded bytes; `starts` holds where each kept segment begins
  const out = Buffer.allocUnsafe(n + 1)
  const starts: number[] = []
  let o = 0
  let i = 1 // dec[0] is '/'
  let trailing = true
  while (i <= n) {
    let e = dec.indexOf(47, i)
    if (e < 0 || e > n) e = n
    const len = e - i
    const last = e >= n
    if (len === 0 || (len === 1 && dec[i] === 46)) {
      trailing = true
    } else if (len === 2 && dec[i] === 46 && dec[i + 1] === 46) {
      if (starts.length > 0) o = starts.pop()!
      trailing = true
    } else {
      starts.push(o)
      out[o++] = 47
      dec.copy(out, o, i, e)
      o += len
      trailing = false
    }
    if (last) break
    i = e + 1
  }
  if (trailing || o === 0) out[o++] = 47
  return out.subarray(0, o)
}

/** Absolute-form targets ("http://h/p?q") become origin-form, as nginx's $request_uri does. */
function originForm (path: string): string {
  if (path.charCodeAt(0) === 47 || path === '*') return path
  const scheme = path.indexOf('://')
  if (scheme < 0) return path
  let start = scheme + 3
  while (start < path.length) {
    const c = path.charCodeAt(start)
    if (c === 47 || c === 63) break
    start++
  }
  const rest = path.slice(start)
  return rest.charCodeAt(0) === 47 ? rest : `/${rest}`
}

function headerValue (headers: string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1]
  return undefined
}

/** The header list with repeated names joined at the first occurrence (nginx ≥ 1.23). */
function joinRepeated (h: string[]): string[] {
  const n = h.length
  let dup = false
  for (let i = 2; i < n && !dup; i += 2) {
    for (let j = 0; j < i; j += 2) {
      if (h[j] === h[i]) {
        dup = true
        break
      }
    }
  }
  if (!dup) return h
  const index = new Map<string, number>()
  const out: string[] = []
  for (let i = 0; i < n; i += 2) {
    const name = h[i]!
    const at = index.get(name)
    if (at === undefined) {
      index.set(name, out.length)
      out.push(name, h[i + 1]!)
    } else {
      out[at + 1] += (name === 'cookie' ? '; ' : ', ') + h[i + 1]!
    }
  }
  return out
}

function writeKey (b: Buffer, o: number, key: Uint8Array): number {
  b.set(key, o)
  return o + key.length
}

function writeLen (b: Buffer, o: number, len: number): number {
  b[o] = len & 0xff
  b[o + 1] = len >>> 8
  return o + 2
}

// Below this length a JS loop beats the call into latin1Write.
const SHORT = 32

/** Writes a u16le length and the string; `len` from textLen (negative: UTF-8). */
function writeText (b: FastBuffer, o: number, s: string, len: number): number {
  if (len < 0) {
    writeLen(b, o, -len)
    return o + 2 + b.utf8Write(s, o + 2)
  }
  b[o] = len & 0xff
  b[o + 1] = len >>> 8
  o += 2
  if (len > SHORT) return o + b.latin1Write(s, o)
  for (let i = 0; i < len; i++) b[o + i] = s.charCodeAt(i)
  return o + len
}

function writeUtf8 (b: FastBuffer, o: number, s: string, len: number): number {
  writeLen(b, o, len)
  return o + 2 + b.utf8Write(s, o + 2)
}

// "accept-language" → u16le 20 · "HTTP_ACCEPT_LANGUAGE", cached: names repeat across requests.
const HEADER_KEYS = new Map<string, Uint8Array>()

function headerKey (name: string): Uint8Array {
  let key = HEADER_KEYS.get(name)
  if (key !== undefined) return key
  const len = HTTP_ + name.length
  key = new Uint8Array(2 + len)
  key[0] = len & 0xff
  key[1] = len >>> 8
  key.set(HTTP_PREFIX, 2)
  for (let j = 0; j < name.length; j++) {
    let c = name.charCodeAt(j)
    if (c >= 97 && c <= 122) c -= 32
    else if (c === 45) c = 95
    else if (c <= 32 || c >= 127) throw protocolError('FERRY_ERR_HEAD_INVALID', `header name ${JSON.stringify(name)} is not a token`)
    key[2 + HTTP_ + j] = c
  }
  if (HEADER_KEYS.size >= 1024) HEADER_KEYS.clear()
  HEADER_KEYS.set(name, key)
  return key
}

// Scratch for per-string lengths between the size pass and the write pass (synchronous, so
// one module-level array is safe).
let lens = new Int32Array(64)

/**
 * The uwsgi packet head (4-byte header + vars) for `head`, in one buffer. Write the body's
 * `head.bodyLength` bytes after it.
 */
export function encodeUwsgiRequest (head: RequestHead, options: UwsgiEncodeOptions = {}): Buffer {
  if (head.bodyLength < 0) {
    throw protocolError('FERRY_ERR_UWSGI_LENGTH_REQUIRED', `${head.method} ${head.path} has a streamed body`)
  }
  const hostParam = options.hostParam !== false
  const headers = options.repeatedHeaders === 'repeat' ? head.headers : joinRepeated(head.headers)
  const requestUri = originForm(head.path)
  const q = requestUri.indexOf('?')
  const pathOnly = q < 0 ? requestUri : requestUri.slice(0, q)
  const query = q < 0 ? '' : requestUri.slice(q + 1)
  const pathInfo = nginxPathInfo(pathOnly)
  const contentType = headerValue(headers, 'content-type') ?? ''
  const contentLength = head.bodyLength > 0 ? String(head.bodyLength) : (headerValue(headers, 'content-length') ?? '')
  const documentRoot = options.documentRoot ?? ''
  const serverName = options.serverName ?? head.serverName
  const https = head.scheme === 'https'
  const remotePort = String(head.remotePort)
  const serverPort = String(head.serverPort)
  const host = hostParam ? (head.authority === '' ? serverName : nginxHost(head.authority)) : ''
  const requestId = head.requestId
  const idParam = requestId !== ''

  // size pass
  const queryLen = Buffer.byteLength(query, 'utf8')
  const uriLen = Buffer.byteLength(requestUri, 'utf8')
  const infoLen = typeof pathInfo !== 'string' ? pathInfo.length : q < 0 ? uriLen : Buffer.byteLength(pathInfo, 'utf8')
  if (lens.length < headers.length + 16) lens = new Int32Array(headers.length * 2 + 16)
  const L = lens
  L[0] = textLen(head.method)
  L[1] = textLen(contentType)
  L[2] = textLen(contentLength)
  L[3] = textLen(documentRoot)
  L[4] = textLen(head.protocol)
  L[5] = textLen(head.scheme)
  L[6] = textLen(head.remoteAddress)
  L[7] = textLen(serverName)
  L[8] = textLen(host)
  L[9] = idParam ? textLen(requestId) : 0
  let size = 14 * VALUE_LEN + KEY_QUERY_STRING.length + KEY_REQUEST_METHOD.length + KEY_CONTENT_TYPE.length +
    KEY_CONTENT_LENGTH.length + KEY_REQUEST_URI.length + KEY_PATH_INFO.length + KEY_DOCUMENT_ROOT.length +
    KEY_SERVER_PROTOCOL.length + KEY_REQUEST_SCHEME.length + KEY_REMOTE_ADDR.length + KEY_REMOTE_PORT.length +
    KEY_SERVER_PORT.length + KEY_SERVER_NAME.length + KEY_HTTPS.length +
    queryLen + uriLen + infoLen + remotePort.length + serverPort.length
  for (let i = 0; i < 10; i++) size += Math.abs(L[i]!)
  if (!https) size -= VALUE_LEN + KEY_HTTPS.length
  else size += 2 // "on"
  if (hostParam) size += VALUE_LEN + KEY_HTTP_HOST.length
  if (idParam) size += VALUE_LEN + KEY_HTTP_X_REQUEST_ID.length
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!
    if ((hostParam && name === 'host') || (idParam && name === 'x-request-id')) continue
    const v = textLen(headers[i + 1]!)
    L[16 + i] = v
    size += VAR_OVERHEAD + HTTP_ + name.length + Math.abs(v)
  }
  if (size > UWSGI_MAX_VARS) {
    throw protocolError('FERRY_ERR_UWSGI_ENCODE_TOO_LARGE', `vars block of ${size} bytes for ${head.method} ${head.path.slice(0, 64)}`)
  }

  // write pass
  const b = Buffer.allocUnsafe(UWSGI_HEADER_SIZE + size) as FastBuffer
  b[0] = 0
  b[1] = size & 0xff
  b[2] = size >>> 8
  b[3] = 0
  let o = UWSGI_HEADER_SIZE
  o = writeKey(b, o, KEY_QUERY_STRING)
  o = writeUtf8(b, o, query, queryLen)
  o = writeKey(b, o, KEY_REQUEST_METHOD)
  o = writeText(b, o, head.method, L[0]!)
  o = writeKey(b, o, KEY_CONTENT_TYPE)
  o = writeText(b, o, contentType, L[1]!)
  o = writeKey(b, o, KEY_CONTENT_LENGTH)
  o = writeText(b, o, contentLength, L[2]!)
  o = writeKey(b, o, KEY_REQUEST_URI)
  o = writeUtf8(b, o, requestUri, uriLen)
  o = writeKey(b, o, KEY_PATH_INFO)
  if (typeof pathInfo === 'string') {
    o = writeUtf8(b, o, pathInfo, infoLen)
  } else {
    o = writeLen(b, o, infoLen)
    o += pathInfo.copy(b, o)
  }
  o = writeKey(b, o, KEY_DOCUMENT_ROOT)
  o = writeText(b, o, documentRoot, L[3]!)
  o = writeKey(b, o, KEY_SERVER_PROTOCOL)
  o = writeText(b, o, head.protocol, L[4]!)
  o = writeKey(b, o, KEY_REQUEST_SCHEME)
  o = writeText(b, o, head.scheme, L[5]!)
  if (https) {
    o = writeKey(b, o, KEY_HTTPS)
    o = writeText(b, o, 'on', 2)
  }
  o = writeKey(b, o, KEY_REMOTE_ADDR)
  o = writeText(b, o, head.remoteAddress, L[6]!)
  o = writeKey(b, o, KEY_REMOTE_PORT)
  o = writeText(b, o, remotePort, remotePort.length)
  o = writeKey(b, o, KEY_SERVER_PORT)
  o = writeText(b, o, serverPort, serverPort.length)
  o = writeKey(b, o, KEY_SERVER_NAME)
  o = writeText(b, o, serverName, L[7]!)
  if (hostParam) {
    o = writeKey(b, o, KEY_HTTP_HOST)
    o = writeText(b, o, host, L[8]!)
  }
  if (idParam) {
    o = writeKey(b, o, KEY_HTTP_X_REQUEST_ID)
    o = writeText(b, o, requestId, L[9]!)
  }
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!
    if ((hostParam && name === 'host') || (idParam && name === 'x-request-id')) continue
    const key = headerKey(name)
    b.set(key, o)
    o += key.length
    o = writeText(b, o, headers[i + 1]!, L[16 + i]!)
  }
  return b
}
