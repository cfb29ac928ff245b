/**
 * Request and response heads <-> HEADERS frame payloads (protobuf, proto/ferry.proto),
 * with the static header-name table applied and every field validated on decode so a
 * peer can never smuggle CR/LF or an invalid name into the other tier.
 */
import { ferry } from '../gen/ferry.js'
import { protocolError } from './errors.js'
import { headerCode, headerName, methodCode, methodName } from './header-table.js'
import type { HeaderList, RequestHead, ResponseHead } from './types.js'

/** protobufjs returns sint64 as a Long object when the `long` package is present. */
function toNumber (v: number | { toNumber (): number } | null | undefined): number {
  if (v == null) return 0
  return typeof v === 'number' ? v : v.toNumber()
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: no CR, LF or NUL (RFC 9110 §5.5); other control characters are tolerated as
// Node's own HTTP parser tolerates them.
const BAD_VALUE = /[\r\n\0]/

function toWireHeaders (headers: HeaderList): ferry.Header.$Properties[] {
  const out: ferry.Header.$Properties[] = new Array(headers.length >> 1)
  for (let i = 0, j = 0; i < headers.length; i += 2, j++) {
    const name = headers[i]!
    const code = headerCode(name)
    out[j] = code === 0 ? { code: 0, name, value: headers[i + 1]! } : { code, name: '', value: headers[i + 1]! }
  }
  return out
}

function fromWireHeaders (wire: ferry.Header.$Properties[] | null | undefined, streamId: number): HeaderList {
  if (wire == null) return []
  const out: HeaderList = new Array(wire.length * 2)
  for (let i = 0; i < wire.length; i++) {
    const h = wire[i]!
    let name: string
    if (h.code) {
      const n = headerName(h.code)
      if (n === undefined) throw protocolError('FERRY_ERR_HEAD_INVALID', `unknown header code ${h.code}`, { streamId })
      name = n
    } else {
      name = h.name ?? ''
      if (!TOKEN.test(name)) throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid header name ${JSON.stringify(name.slice(0, 64))}`, { streamId })
    }
    const value = h.value ?? ''
    if (BAD_VALUE.test(value)) throw protocolError('FERRY_ERR_HEAD_INVALID', `header ${name} has CR, LF or NUL in its value`, { streamId })
    out[2 * i] = name
    out[2 * i + 1] = value
  }
  return out
}

export function encodeRequestHead (head: RequestHead): Uint8Array {
  const code = methodCode(head.method)
  return ferry.RequestHead.encode({
    method: code,
    methodName: code === 0 ? head.method : '',
    path: head.path,
    authority: head.authority,
    scheme: head.scheme,
    headers: toWireHeaders(head.headers),
    remoteAddress: head.remoteAddress,
    remotePort: head.remotePort,
    requestId: head.requestId,
    bodyLength: head.bodyLength,
    serverName: head.serverName,
    serverPort: head.serverPort,
    protocol: head.protocol
  }).finish()
}

function decodeMessage<T> (decode: () => T, what: string, streamId: number): T {
  try {
    return decode()
  } catch (cause) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', `${what} is not valid protobuf`, { cause, streamId })
  }
}

export function decodeRequestHead (payload: Uint8Array, streamId = 0): RequestHead {
  const m = decodeMessage(() => ferry.RequestHead.decode(payload), 'request head', streamId)
  let method: string
  if (m.method) {
    const name = methodName(m.method)
    if (name === undefined) throw protocolError('FERRY_ERR_HEAD_INVALID', `unknown method code ${m.method}`, { streamId })
    method = name
  } else {
    method = m.methodName ?? ''
    if (!METHOD_TOKEN.test(method)) throw protocolError('FERRY_ERR_HEAD_INVALID', 'invalid method', { streamId })
  }
  const path = m.path ?? ''
  if (path.length === 0 || BAD_VALUE.test(path) || path.includes(' ') || !(path[0] === '/' || path === '*')) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', 'path must be origin-form ("/…") or "*"', { streamId })
  }
  const bodyLength = toNumber(m.bodyLength as number | { toNumber (): number } | null)
  if (!Number.isSafeInteger(bodyLength) || bodyLength < -1) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid body length ${bodyLength}`, { streamId })
  }
  const authority = m.authority ?? ''
  const requestId = m.requestId ?? ''
  if (BAD_VALUE.test(authority) || BAD_VALUE.test(requestId)) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', 'authority or request id has CR, LF or NUL', { streamId })
  }
  return {
    method,
    path,
    authority,
    scheme: m.scheme || 'http',
    headers: fromWireHeaders(m.headers, streamId),
    remoteAddress: m.remoteAddress ?? '',
    remotePort: m.remotePort ?? 0,
    requestId,
    bodyLength,
    serverName: m.serverName ?? '',
    serverPort: m.serverPort ?? 0,
    protocol: m.protocol || 'HTTP/1.1'
  }
}

export function encodeResponseHead (head: ResponseHead): Uint8Array {
  return ferry.ResponseHead.encode({
    status: head.status,
    headers: toWireHeaders(head.headers),
    bodyLength: head.bodyLength
  }).finish()
}

export function decodeResponseHead (payload: Uint8Array, streamId = 0): ResponseHead {
  const m = decodeMessage(() => ferry.ResponseHead.decode(payload), 'response head', streamId)
  const status = m.status ?? 0
  if (status < 100 || status > 999) throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid status ${status}`, { streamId })
  const bodyLength = toNumber(m.bodyLength as number | { toNumber (): number } | null)
  if (!Number.isSafeInteger(bodyLength) || bodyLength < -1) {
    throw protocolError('FERRY_ERR_HEAD_INVALID', `invalid body length ${bodyLength}`, { streamId })
  }
  return { status, headers: fromWireHeaders(m.headers, streamId), bodyLength }
}
