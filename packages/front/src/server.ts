/**
 * createFront: a fastify server with the ferry plugin registered, configured the way a
 * front should be (request ids that follow the request to the app tier, 431 answers that
 * carry the request id, optional TLS and HTTP/2 towards clients, an access log).
 * reloadClientTls gives a running HTTPS front a new certificate (SIGHUP).
 */
import type { Socket } from 'node:net'
import { createSecureContext, type Server as TlsServer } from 'node:tls'
import Fastify, * as fastifyModule from 'fastify'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { FRONT_ERRORS, frontError } from './errors.js'
import { isForwarded } from './client-side.js'
import { nextRequestId } from './head.js'
import type { FerryOptions } from './options.js'
import { ferry } from './plugin.js'

/** PEM certificate (chain) and key towards clients: contents, not paths. */
export interface ClientTls {
  cert: string | Buffer
  key: string | Buffer
}

export interface FrontOptions extends FerryOptions {
  /** A pino logger (the front's root logger); default: fastify's, off. */
  logger?: FastifyBaseLogger
  /** TLS towards clients: PEM cert and key (contents, not paths). */
  tls?: ClientTls
  /** HTTP/2 towards clients (with TLS: h2 with HTTP/1.1 fallback via ALPN; without: h2c). */
  http2?: boolean
  /** Largest request head the HTTP/1 parser accepts, bytes (default 16384); past it: 431. */
  maxHeaderSize?: number
  /** Take the client's x-request-id as the request id (only behind a trusted proxy). */
  trustRequestId?: boolean
  /** Keep-alive timeout towards clients, ms (default 72000). */
  keepAliveTimeout?: number
}

const LogController = (fastifyModule as unknown as { LogController: new (o: object) => object }).LogController

function clientErrorHandler (err: NodeJS.ErrnoException, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const id = nextRequestId()
  let status = 400
  let code = 'FERRY_ERR_FRONT_BAD_REQUEST'
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431
    code = 'FERRY_ERR_FRONT_HEAD_TOO_LARGE'
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408
  }
  const body = JSON.stringify({ statusCode: status, code, message: code === 'FERRY_ERR_FRONT_HEAD_TOO_LARGE' ? FRONT_ERRORS.FERRY_ERR_FRONT_HEAD_TOO_LARGE.message : FRONT_ERRORS.FERRY_ERR_FRONT_BAD_REQUEST.message, requestId: id })
  const reason = status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request'
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\nx-request-id: ${id}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

export function createFront (options: FrontOptions): FastifyInstance {
  const { logger, tls, http2, maxHeaderSize, trustRequestId, keepAliveTimeout, ...ferryOptions } = options
  const base: Record<string, unknown> = {
    // fastify's own 'incoming request'/'request completed' lines are off: the access log is ours.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'reqId' }),
    genReqId: () => nextRequestId(),
    requestIdHeader: trustRequestId === true ? 'x-request-id' : false,
    clientErrorHandler,
    keepAliveTimeout: keepAliveTimeout ?? 72000,
    return503OnClosing: true
  }
  if (logger !== undefined) base.loggerInstance = logger
  if (maxHeaderSize !== undefined) base.http = { maxHeaderSize }
  if (http2 === true) {
    base.http2 = true
    if (tls !== undefined) base.https = { cert: tls.cert, key: tls.key, allowHTTP1: true }
  } else if (tls !== undefined) {
    base.https = { cert: tls.cert, key: tls.key }
  }
  const app = Fastify(base) as unknown as FastifyInstance
  if (ferryOptions.accessLog === true) {
    // Requests fastify answers itself (static files, user routes); forwarded ones log in the exchange.
    app.addHook('onResponse', (request, reply, done) => {
      if (isForwarded(request.raw)) {
        done()
        return
      }
      request.log.info({
        method: request.method,
        path: request.url,
        status: reply.statusCode,
        bytes: Number(reply.getHeader('content-length') ?? 0),
        ms: Math.round(reply.elapsedTime * 1000) / 1000,
        upstream: null
      }, 'request')
      done()
    })
  }
  app.register(ferry, ferryOptions)
  return app
}

/**
 * A new certificate and key towards clients (a rotated certificate, on SIGHUP): new TLS
 * connections get it (tls.Server#setSecureContext, HTTP/1.1 and h2 alike), open ones go on
 * with the one they were made with. The pair is checked first (PEM parses, key matches the
 * certificate), so a bad one leaves the running certificate in place. Throws
 * FERRY_ERR_FRONT_TLS_RELOAD when it is not usable or the front does not serve HTTPS.
 */
export function reloadClientTls (app: FastifyInstance, tls: ClientTls): void {
  const server = app.server as unknown as Partial<TlsServer>
  if (typeof server.setSecureContext !== 'function') throw frontError('FERRY_ERR_FRONT_TLS_RELOAD', 'this front does not serve HTTPS (it was started without --tls-cert/--tls-key)')
  try {
    createSecureContext({ cert: tls.cert, key: tls.key })
  } catch (cause) {
    throw frontError('FERRY_ERR_FRONT_TLS_RELOAD', `HTTPS certificate or key not usable: ${(cause as Error).message}`, { cause })
  }
  // a fresh context has fresh session-ticket keys: no session from the old certificate resumes
  server.setSecureContext({ cert: tls.cert, key: tls.key })
}
