/**
 * Errors of the front. Every one is a FerryError (from @ferry/protocol) with a stable
 * `FERRY_ERR_FRONT_*` code and the HTTP status the front answers with. The answer always
 * carries the request id in `x-request-id`, and the access-log line names the code.
 */
import { type CodeInfo, codedErrorFactory, codeInfo as info } from '@ferry/protocol'

export type FrontErrorInfo = CodeInfo

export const FRONT_ERRORS = {
  FERRY_ERR_FRONT_UPSTREAM_CONNECT: info('upstream node unreachable', 502),
  FERRY_ERR_FRONT_UPSTREAM_TLS: info('TLS with an upstream node failed (its certificate did not verify, or it refused ours)', 502),
  FERRY_ERR_FRONT_UPSTREAM_RESET: info('upstream closed or reset the stream before the response was complete', 502),
  FERRY_ERR_FRONT_UPSTREAM_PROTOCOL: info('upstream broke the protocol', 502),
  FERRY_ERR_FRONT_UPSTREAM_TIMEOUT: info('upstream did not answer in time', 504),
  FERRY_ERR_FRONT_CLIENT_TIMEOUT: info('the client took no response bytes for the idle timeout (nginx send_timeout)', 408),
  FERRY_ERR_FRONT_NO_HEALTHY_NODE: info('no healthy upstream node', 503),
  FERRY_ERR_FRONT_OVERLOADED: info('front is overloaded: too many requests waiting for an upstream', 503),
  FERRY_ERR_FRONT_BODY_TOO_LARGE: info('request body exceeds the configured maximum', 413),
  FERRY_ERR_FRONT_HEAD_TOO_LARGE: info('request head exceeds the configured maximum', 431),
  FERRY_ERR_FRONT_BAD_REQUEST: info('malformed request', 400),
  FERRY_ERR_FRONT_CONFIG: info('invalid front configuration', 500),
  FERRY_ERR_FRONT_TLS_RELOAD: info('SIGHUP: TLS files (the --tls-cert/--tls-key certificate towards clients, or the --upstream-tls-* files) could not be read again or are not usable (unreadable, bad PEM, key not matching), or would switch HTTPS on or off; the running TLS settings stay in use', 500),
  FERRY_ERR_FRONT_UNKNOWN_POOL: info('route names a pool that is not configured', 500),
  FERRY_ERR_FRONT_WS_UNSUPPORTED: info('WebSocket upgrade towards a node that cannot carry it (a uwsgi node, or a native node without the websocket feature)', 501),
  FERRY_ERR_FRONT_WS_HANDSHAKE: info('malformed WebSocket upgrade request', 400),
  FERRY_ERR_FRONT_WS_VERSION: info('unsupported WebSocket version (only 13)', 426),
  FERRY_ERR_FRONT_UNCAUGHT: info('an exception or rejection nothing handled (a bug, or a --config module\'s own async code) ended the front: one fatal log line, exit status 1', 500)
} as const satisfies Record<string, FrontErrorInfo>

export type FrontErrorCode = keyof typeof FRONT_ERRORS

/** `frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', 'unix:/run/app.sock: ECONNREFUSED', { cause })` */
export const frontError = codedErrorFactory<FrontErrorCode>(FRONT_ERRORS)
