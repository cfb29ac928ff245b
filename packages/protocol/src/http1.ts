/**
 * HTTP/1.x response head writer, for the app-server answering a uwsgi request (what a uWSGI
 * app sends back to nginx's uwsgi_pass):
 *
 *   "HTTP/1.1 " status " " reason CRLF · { name ": " value CRLF }* · [content-length] · CRLF
 *
 * Choices:
 * - Framing is the writer's: content-length and transfer-encoding headers in the head are
 *   dropped, and `content-length: <bodyLength>` is written when bodyLength ≥ 0. With
 *   bodyLength -1 no length is written: the body ends when the connection closes (uwsgi is
 *   one request per connection, and nginx copies the body through raw, so chunked framing
 *   would reach the client as body bytes). 1xx, 204 and 304 never get a content-length and
 *   never carry a body (RFC 9110 §8.6, §15.4.5); the caller sends no body bytes for them.
 * - Names are written as given (lower-case: HTTP/1 names are case-insensitive), values as
 *   latin1 (one char, one byte). A name that is not an RFC 9110 token, or a value holding
 *   CR, LF, NUL or a char above U+00FF, throws FERRY_ERR_HTTP1_HEADER_INVALID: nothing a
 *   handler sets can split the response.
 * - The reason phrase is Node's for the status (`http.STATUS_CODES`), else "Unknown".
 * - The head is sized first and written into one buffer.
 */
import { STATUS_CODES } from 'node:http'
import { protocolError } from './errors.js'
import type { ResponseHead } from './types.js'

interface FastBuffer extends Buffer {
  latin1Write (s: string, offset: number): number
}

const STATUS_LINES = new Map<number, string>()

/** "HTTP/1.1 200 OK\r\n" for a status (cached). */
export function statusLine (status: number): string {
  let line = STATUS_LINES.get(status)
  if (line === undefined) {
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw protocolError('FERRY_ERR_HTTP1_HEADER_INVALID', `status ${status}`)
    }
    line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`
    STATUS_LINES.set(status, line)
  }
  return line
}

// RFC 9110 token: ! # $ % & ' * + - . ^ _ ` | ~ DIGIT ALPHA
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/

function checkHeader (name: string, value: string): void {
  if (!TOKEN.test(name)) throw protocolError('FERRY_ERR_HTTP1_HEADER_INVALID', `name ${JSON.stringify(name.slice(0, 64))}`)
  if (BAD_VALUE.test(value)) throw protocolError('FERRY_ERR_HTTP1_HEADER_INVALID', `value of ${name}`)
}

function framingHeader (name: string): boolean {
  return name.length > 13 && (name === 'content-length' || name === 'transfer-encoding')
}

/**
 * The response head as one buffer, followed by `body` when given: a small body and its head
 * in one buffer go out as one plain write rather than a corked writev of two (a uwsgi
 * answer: measured ≈ 15 % cheaper for the node behind nginx, see uwsgi-conn.ts). Throws
 * FERRY_ERR_HTTP1_HEADER_INVALID for a header that cannot be written safely (see the file
 * comment).
 */
export function encodeHttp1ResponseHead (head: ResponseHead, body: Uint8Array | null = null): Buffer {
  const status = head.status
  const line = statusLine(status)
  const h = head.headers
  const noLength = status < 200 || status === 204 || status === 304
  const length = noLength || head.bodyLength < 0 ? '' : String(head.bodyLength)
  let size = line.length + 2
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!
    const value = h[i + 1]!
    checkHeader(name, value)
    if (framingHeader(name)) continue
    size += name.length + value.length + 4
  }
  if (length !== '') size += 18 + length.length // "content-length: " N CRLF
  const b = Buffer.allocUnsafe(body === null ? size : size + body.byteLength) as FastBuffer
  let o = b.latin1Write(line, 0)
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!
    if (framingHeader(name)) continue
    o += b.latin1Write(name, o)
    b[o++] = 58 // ':'
    b[o++] = 32
    o += b.latin1Write(h[i + 1]!, o)
    b[o++] = 13
    b[o++] = 10
  }
  if (length !== '') {
    o += b.latin1Write('content-length: ', o)
    o += b.latin1Write(length, o)
    b[o++] = 13
    b[o++] = 10
  }
  b[o++] = 13
  b[o++] = 10
  if (body !== null) b.set(body, o)
  return b
}
