/**
 * Request and response heads <-> HEADERS frame payloads (protobuf messages RequestHead and
 * ResponseHead of proto/ferry.proto), with the static header-name table applied and every
 * field validated on decode so a peer can never smuggle CR/LF or an invalid name into the
 * other tier. Hand-written over pb.ts (reading) and pb-writer.ts (writing) for speed (these
 * run per request); the bytes equal the generated protobufjs encoder's (test/protocol
 * checks), and any valid protobuf encoding of the messages decodes.
 *
 * Both directions keep the last value of the fields that repeat from one head to the next
 * (scheme, authority, addresses, protocol, a header value per table code): a decoded field
 * whose bytes equal it is answered with the same string, and an encoded string equal to it
 * is written by copying its bytes. Results never depend on what the caches hold.
 */
import { protocolError } from './errors.js'
import { headerCode, headerName, methodCode, methodName } from './header-table.js'
import { asBuffer, CACHE_SLOTS, type PbReader, reader } from './pb.js'
import {
  beginField, endField, slab, stringRoom, VARINT_ROOM, writeCachedStringField, writeSintField, writeStringField,
  writeUintField, writeVarint
} from './pb-writer.js'
import type { HeaderList, RequestHead, ResponseHead } from './types.js'

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: no CR, LF or NUL (RFC 9110 §5.5); other control characters are tolerated as
// Node's own HTTP parser tolerates them.
const BAD_VALUE = /[\r\n\0]/

// Field tags: (field number << 3) | wire type (0 varint, 2 length-delimited).
const T_METHOD = 0x08
const T_METHOD_NAME = 0x12
const T_PATH = 0x1a
const T_AUTHORITY = 0x22
const T_SCHEME = 0x2a
const T_HEADERS = 0x32
const T_REMOTE_ADDRESS = 0x3a
const T_REMOTE_PORT = 0x40
const T_REQUEST_ID = 0x4a
const T_BODY_LENGTH = 0x50
const T_SERVER_NAME = 0x5a
const T_SERVER_PORT = 0x60
const T_PROTOCOL = 0x6a
const T_RES_STATUS = 0x08
const T_RES_HEADERS = 0x12
const T_RES_BODY_LENGTH = 0x18
const T_H_CODE = 0x08
const T_H_NAME = 0x12
const T_H_VALUE = 0x1a

// Cache slots, shared by the reader's cache (pb.ts) and the writer's (pb-writer.ts): the
// request fields that repeat from one head to the next, a header value per table code, and
// (reader) header names sent as strings by length. A slot only picks which last value is
// compared: results never depend on what a slot holds.
const S_AUTHORITY = 0
const S_SCHEME = 1
const S_REMOTE_ADDRESS = 2
const S_SERVER_NAME = 3
const S_PROTOCOL = 4
const S_VALUE = 8
const VALUE_CODES = 88 // codes 1..87 have a value slot (the table has 72)
const S_NAME = S_VALUE + VALUE_CODES
const NAME_SLOTS = CACHE_SLOTS - S_NAME

/** Most bytes the header list takes: per header its tag and length (6), a code field (11) or a name, and a value. */
function headersRoom (headers: HeaderList): number {
  let n = 0
  for (let i = 0; i < headers.length; i += 2) n += 3 * (headers[i]!.length + headers[i + 1]!.length) + 29
  return n
}

function writeHeaders (b: Buffer, p: number, tag: number, headers: HeaderList): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!
    const value = headers[i + 1]!
    const start = beginField(b, p, tag)
    const code = headerCode(name)
    if (code !== 0) {
      b[start] = T_H_CODE
      p = writeVarint(b, start + 1, code)
      p = code < VALUE_CODES ? writeCachedStringField(b, p, T_H_VALUE, value, S_VALUE + code) : writeStringField(b, p, T_H_VALUE, value)
    } else {
      p = writeStringField(b, start, T_H_NAME, name)
      p = writeStringField(b, p, T_H_VALUE, value)
    }
    p = endField(b, start, p)
  }
  return p
}

/** Largest body length a head carries: its zigzag varint must stay a safe integer. */
export const MAX_BODY_LENGTH = 2 ** 52 - 1

function checkEncodeBodyLength (n: number): void {
  if (!Number.isSafeInteger(n) || n < -1 || n > MAX_BODY_LENGTH) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', `body length ${n} outside -1..2^52-1`)
  }
}

export function encodeRequestHead (head: RequestHead): Buffer {
  return slab.finish(writeRequestHead(head))
}

/**
 * The encoded request head as a view into the shared encode slab: valid only until the
 * next encode, and a later call may return the same Buffer object. For writers that copy it
 * at once (Session's staged writes): no allocation.
 */
export function encodeRequestHeadView (head: RequestHead): Buffer {
  return slab.view(writeRequestHead(head))
}

/** Writes the head at slab.pos; returns where it ends. */
function writeRequestHead (head: RequestHead): number {
  if (head.bodyLength !== 0) checkEncodeBodyLength(head.bodyLength)
  const b = slab.reserve(5 * VARINT_ROOM + stringRoom(head.method) + stringRoom(head.path) + stringRoom(head.authority) +
    stringRoom(head.scheme) + headersRoom(head.headers) + stringRoom(head.remoteAddress) + stringRoom(head.requestId) +
    stringRoom(head.serverName) + stringRoom(head.protocol))
  let p = slab.pos
  const code = methodCode(head.method)
  p = writeUintField(b, p, T_METHOD, code)
  if (code === 0) p = writeStringField(b, p, T_METHOD_NAME, head.method)
  p = writeStringField(b, p, T_PATH, head.path)
  p = writeCachedStringField(b, p, T_AUTHORITY, head.authority, S_AUTHORITY)
  p = writeCachedStringField(b, p, T_SCHEME, head.scheme, S_SCHEME)
  p = writeHeaders(b, p, T_HEADERS, head.headers)
  p = writeCachedStringField(b, p, T_REMOTE_ADDRESS, head.remoteAddress, S_REMOTE_ADDRESS)
  p = writeUintField(b, p, T_REMOTE_PORT, head.remotePort)
  p = writeStringField(b, p, T_REQUEST_ID, head.requestId)
  p = writeSintField(b, p, T_BODY_LENGTH, head.bodyLength)
  p = writeCachedStringField(b, p, T_SERVER_NAME, head.serverName, S_SERVER_NAME)
  p = writeUintField(b, p, T_SERVER_PORT, head.serverPort)
  return writeCachedStringField(b, p, T_PROTOCOL, head.protocol, S_PROTOCOL)
}

export function encodeResponseHead (head: ResponseHead): Buffer {
  return slab.finish(writeResponseHead(head))
}

/** The encoded response head as a view into the shared encode slab (see encodeRequestHeadView). */
export function encodeResponseHeadView (head: ResponseHead): Buffer {
  return slab.view(writeResponseHead(head))
}

function writeResponseHead (head: ResponseHead): number {
  if (head.bodyLength !== 0) checkEncodeBodyLength(head.bodyLength)
  const b = slab.reserve(2 * VARINT_ROOM + headersRoom(head.headers))
  let p = writeUintField(b, slab.pos, T_RES_STATUS, head.status)
  p = writeHeaders(b, p, T_RES_HEADERS, head.headers)
  return writeSintField(b, p, T_RES_BODY_LENGTH, head.bodyLength)
}

/** Header names sent as strings that passed the token check, by the slot of their length. */
const validNames: string[] = new Array<string>(NAME_SLOTS).fill('')

/** Reads one Header sub-message (the reader is positioned at its length) and appends to out. */
function readHeader (r: PbReader, out: HeaderList): void {
  const len = r.length()
  const b = r.buf
  const p = r.pos
  // The layout this encoder writes for a table name: code (one byte), then the value (if not
  // empty) with a one-byte length that fills the rest. Anything else takes the general loop.
  if (len >= 2 && b[p] === T_H_CODE) {
    const code = b[p + 1]!
    const name = code < VALUE_CODES ? headerName(code) : undefined
    if (name !== undefined) {
      if (len === 2) {
        r.pos = p + 2
        out.push(name, '')
        return
      }
      if (b[p + 2] === T_H_VALUE && b[p + 3]! < 0x80 && b[p + 3] === len - 4) {
        r.pos = p + 3
        const value = r.cachedString(S_VALUE + code)
        if (!r.plain && BAD_VALUE.test(value)) throw protocolError('FERRY_ERR_HEAD_INVALID', `header ${name} has CR, LF or NUL in its value`, { streamId: r.streamId })
        out.push(name, value)
        return
      }
    }
  }
  readHeaderFields(r, out, p + len)
}

/** readHeader for any valid encoding: fields in any order, repeated, unknown, names as strings. */
function readHeaderFields (r: PbReader, out: HeaderList, end: number): void {
  const outerEnd = r.end
  r.end = end
  let code = 0
  let name = ''
  let nameSlot = -1
  let value = ''
  let valuePlain = true
  while (r.pos < end) {
    const tag = r.varint()
    if (tag === T_H_CODE) code = r.varint()
    else if (tag === T_H_VALUE) {
      value = code > 0 && code < VALUE_CODES ? r.cachedString(S_VALUE + code) : r.string()
      valuePlain = r.plain
    } else if (tag === T_H_NAME) {
      nameSlot = (r.buf[r.pos] ?? 0) % NAME_SLOTS // the length's first byte: names up to 127 bytes get a slot each
      name = r.cachedString(S_NAME + nameSlot)
    } else r.skip(tag & 7)
  }
  r.end = outerEnd
  if (code !== 0) {
    const n = headerName(code)
    if (n === undefined) throw protocolError('FERRY_ERR_HEAD_INVALID', `unknown header code ${code}`, { streamId: r.streamId })
    name = n
  } else if (nameSlot < 0 || name !== validNames[nameSlot]) {
    if (!TOKEN.test(name)) throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid header name ${JSON.stringify(name.slice(0, 64))}`, { streamId: r.streamId })
    if (nameSlot >= 0) validNames[nameSlot] = name
  }
  if (!valuePlain && BAD_VALUE.test(value)) throw protocolError('FERRY_ERR_HEAD_INVALID', `header ${name} has CR, LF or NUL in its value`, { streamId: r.streamId })
  out.push(name, value)
}

function checkBodyLength (n: number, streamId: number): void {
  if (n < -1) throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid body length ${n}`, { streamId })
}

export function decodeRequestHead (payload: Uint8Array, streamId = 0): RequestHead {
  const buf = asBuffer(payload)
  const r = reader.reset(buf, 0, buf.length, streamId)
  let mcode = 0
  let method = ''
  let path = ''
  // plain: no CR, LF or NUL found by the reader's scan (see PbReader.plain)
  let pathPlain = true
  let authority = ''
  let authorityPlain = true
  let scheme = ''
  const headers: HeaderList = []
  let remoteAddress = ''
  let remotePort = 0
  let requestId = ''
  let requestIdPlain = true
  let bodyLength = 0
  let serverName = ''
  let serverPort = 0
  let protocol = ''
  while (r.pos < r.end) {
    const tag = r.varint()
    switch (tag) {
      case T_METHOD: mcode = r.varint(); break
      case T_METHOD_NAME: method = r.string(); break
      case T_PATH: path = r.string(); pathPlain = r.plain; break
      case T_AUTHORITY: authority = r.cachedString(S_AUTHORITY); authorityPlain = r.plain; break
      case T_SCHEME: scheme = r.cachedString(S_SCHEME); break
      case T_HEADERS: readHeader(r, headers); break
      case T_REMOTE_ADDRESS: remoteAddress = r.cachedString(S_REMOTE_ADDRESS); break
      case T_REMOTE_PORT: remotePort = r.varint(); break
      case T_REQUEST_ID: requestId = r.string(); requestIdPlain = r.plain; break
      case T_BODY_LENGTH: bodyLength = r.sint(); break
      case T_SERVER_NAME: serverName = r.cachedString(S_SERVER_NAME); break
      case T_SERVER_PORT: serverPort = r.varint(); break
      case T_PROTOCOL: protocol = r.cachedString(S_PROTOCOL); break
      default: r.skip(tag & 7)
    }
  }
  if (mcode !== 0) {
    const name = methodName(mcode)
    if (name === undefined) throw protocolError('FERRY_ERR_HEAD_INVALID', `unknown method code ${mcode}`, { streamId })
    method = name
  } else if (!METHOD_TOKEN.test(method)) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', 'invalid method', { streamId })
  }
  if (path.length === 0 || (!pathPlain && BAD_VALUE.test(path)) || path.includes(' ') || !(path[0] === '/' || path === '*')) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', 'path must be origin-form ("/…") or "*"', { streamId })
  }
  checkBodyLength(bodyLength, streamId)
  if ((!authorityPlain && BAD_VALUE.test(authority)) || (!requestIdPlain && BAD_VALUE.test(requestId))) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', 'authority or request id has CR, LF or NUL', { streamId })
  }
  if (remotePort > 65535 || serverPort > 65535) throw protocolError('FERRY_ERR_HEAD_INVALID', 'port above 65535', { streamId })
  return {
    method,
    path,
    authority,
    scheme: scheme || 'http',
    headers,
    remoteAddress,
    remotePort,
    requestId,
    bodyLength,
    serverName,
    serverPort,
    protocol: protocol || 'HTTP/1.1'
  }
}

export function decodeResponseHead (payload: Uint8Array, streamId = 0): ResponseHead {
  const buf = asBuffer(payload)
  const r = reader.reset(buf, 0, buf.length, streamId)
  let status = 0
  const headers: HeaderList = []
  let bodyLength = 0
  while (r.pos < r.end) {
    const tag = r.varint()
    switch (tag) {
      case T_RES_STATUS: status = r.varint(); break
      case T_RES_HEADERS: readHeader(r, headers); break
      case T_RES_BODY_LENGTH: bodyLength = r.sint(); break
      default: r.skip(tag & 7)
    }
  }
  if (status < 100 || status > 999) throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid status ${status}`, { streamId })
  checkBodyLength(bodyLength, streamId)
  return { status, headers, bodyLength }
}
