/**
 * The access-log line of a forwarded request: one per Exchange, written when it finishes —
 * method, path, status, response bytes, ms, the node that answered and the error code — at
 * info ('request') when access logging is on, and always at warn ('upstream request failed')
 * when the exchange failed. Requests fastify answers itself log the same fields from
 * server.ts's onResponse hook.
 */
import type { FerryError } from '@ferry/protocol'
import type { Exchange } from './exchange.js'
import type { UpstreamNode } from './node.js'

/** The part of a pino logger the front writes request lines with (fastify's request.log). */
export interface AccessLogger {
  info (obj: Record<string, unknown>, msg: string): void
  warn (obj: Record<string, unknown>, msg: string): void
}

/** `node`: the node that served the last attempt (null when none was reached). */
export function logExchange (ex: Exchange, node: UpstreamNode | null, err: FerryError | undefined): void {
  const line = {
    method: ex.head.method,
    path: ex.head.path,
    status: ex.status,
    bytes: ex.bytesOut,
    ms: Math.round((performance.now() - ex.start) * 1000) / 1000,
    upstream: node?.name ?? null,
    code: ex.code === '' ? undefined : ex.code
  }
  if (err !== undefined) ex.log.warn({ ...line, err: err.message }, 'upstream request failed')
  else ex.log.info(line, 'request')
}
