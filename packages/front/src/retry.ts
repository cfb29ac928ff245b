/**
 * What a failed attempt at a node becomes: whether it may go to another node instead, and
 * which error the client sees otherwise. nginx's proxy_next_upstream in spirit: a request the
 * node refused unread (GOAWAY, RESET REFUSED_STREAM, no connection) is resent whatever its
 * method; one the node may have begun is resent only when it is idempotent and has no body;
 * never more than one retry, never once request body bytes went up or a response head came
 * back (the Exchange checks that part of its state), never with retry switched off.
 */
import { type FerryError, ResetCode } from '@ferry/protocol'
import { frontError } from './errors.js'
import type { Exchange } from './exchange.js'
import type { UpstreamNode } from './node.js'

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** The node refused the request without reading it: safe to resend, and not the node's failure. */
export function isRefused (err: FerryError): boolean {
  return err.code === 'FERRY_ERR_GOAWAY' || err.resetCode === ResetCode.REFUSED_STREAM
}

/** An attempt that got no response head may go to another node. */
export function mayRetry (ex: Exchange, refused: boolean): boolean {
  return ex.host.retry && ex.attempts < 2 && ex.bodyBytes === 0 &&
    (refused || (ex.head.bodyLength === 0 && IDEMPOTENT.has(ex.head.method)))
}

/** The error the client is answered with for a failed attempt (front codes pass through). */
export function attemptError (err: FerryError, node: UpstreamNode | null, refused: boolean): FerryError {
  if (err.code.startsWith('FERRY_ERR_FRONT_')) return err
  if (refused) return frontError('FERRY_ERR_FRONT_NO_HEALTHY_NODE', err.message, { cause: err })
  if (err.code === 'FERRY_ERR_STREAM_RESET' || err.code === 'FERRY_ERR_SESSION_CLOSED') {
    return frontError('FERRY_ERR_FRONT_UPSTREAM_RESET', `${node?.name ?? ''}: ${err.message}`, { cause: err })
  }
  return frontError('FERRY_ERR_FRONT_UPSTREAM_PROTOCOL', `${node?.name ?? ''}: ${err.message}`, { cause: err })
}
