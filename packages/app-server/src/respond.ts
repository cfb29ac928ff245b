/**
 * Answers the main thread gives itself (queue full, timeout, crash, shutting down), the same
 * for native and uwsgi connections, and request ids for requests that came without one.
 */
import { randomBytes } from 'node:crypto'
import type { FerryError, RequestHead } from '@ferry/protocol'

const prefix = randomBytes(4).toString('hex')
let counter = 0

/** A request id for a request whose head carried none (uwsgi without X-Request-Id, tests). */
export function ensureRequestId (head: RequestHead): void {
  if (head.requestId === '') head.requestId = `${prefix}-${(++counter).toString(36)}`
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  413: 'Content Too Large',
  502: 'Bad Gateway',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}

export interface SimpleResponse {
  status: number
  headers: string[]
  body: Buffer
}

export function errorResponse (err: FerryError, head: RequestHead): SimpleResponse {
  const status = err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
  const body = Buffer.from(`${REASONS[status] ?? 'Error'}: ${err.message} (request id ${head.requestId})\n`)
  const headers = ['content-type', 'text/plain; charset=utf-8', 'x-request-id', head.requestId, 'x-ferry-error', err.code]
  if (status === 503) headers.push('retry-after', '1')
  headers.push('content-length', String(body.byteLength))
  return { status, headers, body: head.method === 'HEAD' ? Buffer.alloc(0) : body }
}
