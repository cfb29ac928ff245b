/**
 * The client's side of an Exchange: what is written to the client's response (the node's head
 * relayed, its body with backpressure credit, the JSON error answer), the listeners that read
 * the request body and take the response's 'drain', and the tag that ties both to the Exchange
 * (the response's 'close' listener is in exchange.ts: it turns on the exchange's state).
 *
 * Hot path notes: plain functions that take the Exchange (one object per request, no other
 * allocation); the listeners are shared functions that find their Exchange through a symbol on
 * the request or response object, never a closure per request. The decisions — which state the
 * exchange is in, whether an answer can still be written — stay in exchange.ts.
 */
import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import type { FerryError, ResponseHead } from '@ferry/protocol'
import type { Exchange } from './exchange.js'
import { type ClientRequest, RESPONSE_HOP_BY_HOP } from './head.js'

export type ClientResponse = ServerResponse | Http2ServerResponse

/** Tag on the client's request and response: the Exchange they belong to. */
export const kExchange = Symbol('ferry.exchange')
export type Tagged<T> = T & { [kExchange]?: Exchange }

/** The request went through an Exchange (its access-log line is written there). */
export function isForwarded (req: ClientRequest): boolean {
  return (req as Tagged<ClientRequest>)[kExchange] !== undefined
}

/** Read the request body (the request was tagged in Exchange.run). */
export function readRequestBody (ex: Exchange): void {
  const req = ex.req
  req.on('data', onReqData)
  req.on('end', onReqEnd)
}

/** Relay the node's final response head: hop-by-hop headers out, Content-Length from the frame. */
export function writeResponseHead (ex: Exchange, head: ResponseHead): void {
  let h = head.headers
  let hasLength = false
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!
    if (RESPONSE_HOP_BY_HOP.has(name)) {
      h = stripHopByHop(h)
      break
    }
    if (name === 'content-length') hasLength = true
  }
  // head.headers is this response's own freshly decoded list: extended in place, not copied.
  if (!hasLength && head.bodyLength > 0) h.push('content-length', String(head.bodyLength))
  if (ex.h2) (ex.res as Http2ServerResponse).writeHead(head.status, toObject(h))
  else (ex.res as ServerResponse).writeHead(head.status, h)
}

/**
 * Response body bytes from the node (straight from the native stream's onData or UwsgiCall's
 * parser); returns true when the client took them at once.
 */
export function writeBody (ex: Exchange, chunk: Buffer): boolean {
  if (ex.bytesOut === 0 && chunk.length === ex.expect) {
    // The whole body in one chunk: END_STREAM is next; answer with res.end(body).
    ex.bytesOut = chunk.length
    ex.held = chunk
    return true
  }
  if (ex.held !== null) {
    (ex.res as ServerResponse).write(ex.held)
    ex.held = null
  }
  ex.bytesOut += chunk.length
  ex.deadline = Date.now() + ex.target.idleTimeout
  if ((ex.res as ServerResponse).write(chunk)) return true
  ex.unconsumed += chunk.length
  if (!ex.drainHooked) {
    ex.drainHooked = true
    ex.res.on('drain', onResDrain)
  }
  return false
}

/** End the response, with the held whole body when there is one. */
export function endResponse (ex: Exchange): void {
  const held = ex.held
  if (held !== null) {
    ex.held = null
    ex.res.end(held)
  } else ex.res.end()
}

/** The client's socket drained: hand the held credit back upstream. */
function resDrained (ex: Exchange): void {
  const n = ex.unconsumed
  if (n === 0) return
  ex.unconsumed = 0
  ex.deadline = Date.now() + ex.target.idleTimeout
  if (ex.stream !== null) ex.stream.consume(n)
  else if (ex.uwsgi !== null) ex.uwsgi.resume()
}

/** Answer with `err` as JSON and the request id (no response head was sent yet). */
export function writeError (ex: Exchange, err: FerryError): void {
  const res = ex.res
  const requestId = ex.head.requestId
  const body = JSON.stringify({ statusCode: err.statusCode, code: err.code, message: err.message, requestId })
  const headers = ['content-type', 'application/json; charset=utf-8', 'x-request-id', requestId, 'content-length', String(Buffer.byteLength(body))]
  if (err.statusCode === 503) headers.push('retry-after', ex.host.retryAfter)
  if (err.statusCode === 413 && ex.bodyStarted) headers.push('connection', 'close')
  if (ex.h2) (res as Http2ServerResponse).writeHead(err.statusCode, toObject(headers))
  else (res as ServerResponse).writeHead(err.statusCode, headers)
  res.end(body)
  if (ex.bodyStarted && ex.req.readableEnded === false) ex.req.resume()
}

function stripHopByHop (h: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < h.length; i += 2) if (!RESPONSE_HOP_BY_HOP.has(h[i]!)) out.push(h[i]!, h[i + 1]!)
  return out
}

function toObject (h: string[]): Record<string, string | string[]> {
  const o: Record<string, string | string[]> = {}
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i]!
    const prev = o[k]
    if (prev === undefined) o[k] = h[i + 1]!
    else if (Array.isArray(prev)) prev.push(h[i + 1]!)
    else o[k] = [prev, h[i + 1]!]
  }
  return o
}

// ── shared listeners (no closure per request) ────────────────────────────────

function onReqData (this: Tagged<ClientRequest>, chunk: Buffer): void {
  this[kExchange]!.onBody(chunk)
}

function onReqEnd (this: Tagged<ClientRequest>): void {
  this[kExchange]!.onBodyEnd()
}

function onResDrain (this: Tagged<ClientResponse>): void {
  resDrained(this[kExchange]!)
}
