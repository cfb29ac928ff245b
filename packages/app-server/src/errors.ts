/**
 * Errors of the app-server. Same shape as the protocol's table: a stable code, the HTTP
 * status the client gets, and a default message. Across the worker boundary an error
 * travels as `{ code, message, statusCode }`.
 */
import { type CodeInfo, codedErrorFactory, codeInfo as info } from '@ferry/protocol/core'

export const APP_SERVER_ERRORS = {
  FERRY_ERR_APP_ADDRESS_IN_USE: info('address is already served by a live process', 500),
  FERRY_ERR_APP_LISTEN: info('could not listen on the address', 500),
  FERRY_ERR_APP_OPTIONS: info('invalid app-server option', 500),
  FERRY_ERR_APP_HANDLER_LOAD: info('the handler module could not be loaded', 500),
  FERRY_ERR_APP_HANDLER_SHAPE: info('the handler module has no fetch handler (default export with fetch(), or a function)', 500),
  FERRY_ERR_APP_HANDLER_THREW: info('the handler threw', 500),
  FERRY_ERR_APP_HANDLER_RESULT: info('the handler did not return a Response', 500),
  FERRY_ERR_APP_UNCAUGHT: info('an uncaught exception or unhandled rejection in the request\'s async work', 500),
  FERRY_ERR_APP_RESPONSE_BODY: info('reading the response body failed', 500),
  FERRY_ERR_APP_QUEUE_FULL: info('request queue is full', 503),
  FERRY_ERR_APP_TIMEOUT: info('the handler did not answer in time', 504),
  FERRY_ERR_APP_WORKER_CRASHED: info('the worker running the request crashed or exited', 500),
  FERRY_ERR_APP_WORKER_REPLACED: info('the worker was terminated (stuck past the timeout) before the request finished', 500),
  FERRY_ERR_APP_SHUTTING_DOWN: info('the server is shutting down', 503),
  FERRY_ERR_APP_UWSGI_REFUSED: info('uwsgi connection from an address not in --uwsgi-allow', 403),
  FERRY_ERR_APP_UNAUTHENTICATED: info('a non-loopback tcp listener without --auth (or a tls:// one without --tls-client-ca or --auth): a warning at start', 500),
  FERRY_ERR_APP_TLS_HANDSHAKE: info('a connection to a tls:// listener was refused: the TLS handshake failed or the client certificate was missing or not signed by --tls-client-ca (closed, logged with the reason)', 403),
  FERRY_ERR_APP_TLS_RELOAD: info('SIGHUP: the --tls-cert/--tls-key/--tls-client-ca files could not be read again or do not fit together (unreadable, bad PEM, key not matching the certificate); the running certificates stay in use', 500),
  FERRY_ERR_APP_NO_MOUNT: info('no mount serves this path', 404),
  FERRY_ERR_APP_MIDDLEWARE_LOAD: info('a middleware module could not be loaded', 500),
  FERRY_ERR_APP_BODY_TOO_LARGE: info('the request body is larger than this mount accepts', 413),
  FERRY_ERR_APP_CGI_NOT_FOUND: info('no CGI program at this path', 404),
  FERRY_ERR_APP_CGI_FORBIDDEN: info('this path may not run as a CGI program', 403),
  FERRY_ERR_APP_CGI_SPAWN: info('the CGI program could not be started', 500),
  FERRY_ERR_APP_CGI_BAD_RESPONSE: info('the CGI program sent no valid CGI response', 502),
  FERRY_ERR_APP_CGI_TIMEOUT: info('the CGI program did not finish in time and was killed', 504),
  FERRY_ERR_APP_CGI_BUSY: info('too many CGI programs running and waiting', 503),
  FERRY_ERR_APP_CGI_REDIRECT_LOOP: info('too many CGI local redirects', 500),
  FERRY_ERR_APP_WS_UNSUPPORTED: info('WebSocket upgrade on a connection that cannot carry one (uwsgi)', 501),
  FERRY_ERR_APP_WS_LIMIT: info('too many open WebSockets on this node (--max-websockets)', 503)
} as const satisfies Record<string, CodeInfo>

export type AppErrorCode = keyof typeof APP_SERVER_ERRORS

export const appError = codedErrorFactory<AppErrorCode>(APP_SERVER_ERRORS)
