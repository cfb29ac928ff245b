/**
 * TLS towards tls:// and uwsgi+tls:// upstream nodes (nginx `proxy_ssl_trusted_certificate`
 * + `proxy_ssl_verify on`, `proxy_ssl_certificate`/`_key`, `proxy_ssl_name`; for uwsgi:
 * `uwsgi_pass suwsgi://` with `uwsgi_ssl_*`).
 *
 * The node's certificate is always verified (there is no switch to turn that off): against
 * `ca` when given, else Node's bundled root CAs; its name against `servername` when given,
 * else the host of the node's address. With `cert` + `key` the front presents a client
 * certificate (nodes with --tls-client-ca require one). One secure context is built at
 * start and shared by every connection; each node keeps its last TLS session, so uwsgi's
 * connection per request resumes instead of running a full handshake (nginx
 * proxy_ssl_session_reuse).
 */
import { connect as netConnect, type Socket } from 'node:net'
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls'
import { type Address, checkCaBundle, type FerryError, type FerryErrorOptions } from '@ferry/protocol'
import { frontError } from './errors.js'

/** The PEM contents (not file names: the CLI reads the files). */
export interface UpstreamTlsOptions {
  /** CA certificate(s) that sign the nodes' certificates; default Node's root CAs. */
  ca?: string | Buffer | Array<string | Buffer>
  /** Client certificate (chain) presented to nodes; goes with `key`. */
  cert?: string | Buffer
  key?: string | Buffer
  /** SNI and the name checked in the node's certificate; default the address's host. */
  servername?: string
}

export interface UpstreamTls {
  context: SecureContext
  servername: string | undefined
}

/** Build the shared context; null when no option is set. Throws FERRY_ERR_FRONT_CONFIG. */
export function upstreamTls (o: UpstreamTlsOptions | undefined): UpstreamTls | null {
  if (o === undefined) return null
  if ((o.cert === undefined) !== (o.key === undefined)) throw frontError('FERRY_ERR_FRONT_CONFIG', 'upstream TLS: a client certificate (--upstream-tls-cert) and its key (--upstream-tls-key) go together')
  if (o.servername !== undefined && (typeof o.servername !== 'string' || o.servername === '')) throw frontError('FERRY_ERR_FRONT_CONFIG', 'upstream TLS: servername must be a non-empty name')
  let context: SecureContext
  try {
    if (o.ca !== undefined) for (const one of Array.isArray(o.ca) ? o.ca : [o.ca]) checkCaBundle(one)
    context = createSecureContext({ ca: o.ca, cert: o.cert, key: o.key })
  } catch (cause) {
    throw frontError('FERRY_ERR_FRONT_CONFIG', `upstream TLS: CA, certificate or key not usable: ${(cause as Error).message}`, { cause })
  }
  return { context, servername: o.servername }
}

/** The default when tls:// nodes exist but no option was given: Node's root CAs. */
export function defaultUpstreamTls (): UpstreamTls {
  return { context: createSecureContext({}), servername: undefined }
}

/** A plain socket for unix/tcp, a TLS one for tls:// (resuming `session` when given). */
export function connectSocket (address: Address, tls: UpstreamTls | null, session?: Buffer): Socket {
  if (address.kind === 'unix') return netConnect({ path: address.path })
  if (address.tls !== true) return netConnect({ host: address.host, port: address.port })
  if (tls === null) throw frontError('FERRY_ERR_FRONT_CONFIG', `tls://${address.host}:${address.port}: no upstream TLS settings`)
  return tlsConnect({
    host: address.host,
    port: address.port,
    secureContext: tls.context,
    servername: tls.servername,
    session,
    rejectUnauthorized: true
  })
}

/** Which part of a tls:// connection has been reached, to tell TLS failures from tcp ones. */
export interface Handshake {
  tcp: boolean
  secure: boolean
}

export function watchHandshake (socket: Socket): Handshake {
  const h: Handshake = { tcp: false, secure: false }
  socket.once('connect', () => { h.tcp = true })
  socket.once('secureConnect', () => { h.secure = true })
  return h
}

/**
 * A socket error before the node was usable: a TLS failure (during the handshake, or an
 * ERR_SSL_/ERR_TLS_ alert such as the node refusing our certificate) is
 * FERRY_ERR_FRONT_UPSTREAM_TLS with Node's reason; anything else FERRY_ERR_FRONT_UPSTREAM_CONNECT.
 */
export function connectError (name: string, err: NodeJS.ErrnoException, tls: boolean, h: Handshake | null, extra: FerryErrorOptions = {}): FerryError {
  const code = err.code ?? err.message
  if (tls && h !== null && ((h.tcp && !h.secure) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_'))) {
    return frontError('FERRY_ERR_FRONT_UPSTREAM_TLS', `${name}: ${code}: ${err.message}`, { cause: err, ...extra })
  }
  return frontError('FERRY_ERR_FRONT_UPSTREAM_CONNECT', `${name}: ${code}`, { cause: err, ...extra })
}

/** The node closed a verified TLS connection before answering HELLO. */
export function closedAfterHandshake (name: string): FerryError {
  return frontError('FERRY_ERR_FRONT_UPSTREAM_TLS', `${name}: CLOSED_AFTER_HANDSHAKE: the node closed the connection right after the TLS handshake; it likely refused this front's client certificate (the node's FERRY_ERR_APP_TLS_HANDSHAKE line says why)`)
}
