/**
 * TLS on tls:// listeners (the link between tiers; nginx `ssl_certificate`,
 * `ssl_client_certificate` + `ssl_verify_client on`; uWSGI `--ssl-socket`).
 *
 * The files are read at start, and again on SIGHUP (`reloadListenerTls`): the listeners then
 * hand the new certificate, key and client CA to new connections (tls.Server
 * setSecureContext) while open ones go on with the old; files that do not load leave the
 * running context in place. With a client CA, every peer must present a certificate
 * that CA signed: Node verifies it when the handshake ends, and a connection that fails is
 * closed before a byte of it is read (no certificate, another CA, expired…), with one log
 * line naming the reason. A handshake that fails earlier (plain text on a TLS port, garbage,
 * no TLS version in common, too slow) is closed and logged the same way.
 */
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { createSecureContext, type TLSSocket } from 'node:tls'
import { type Address, checkCaBundle } from '@ferry/protocol'
import { appError } from './errors.js'

export interface TlsFiles {
  tlsCert: string | null
  tlsKey: string | null
  tlsClientCa: string | null
}

export interface ListenerTls {
  /** PEM certificate (chain) and key of this node. */
  cert: Buffer
  key: Buffer
  /** The CA client certificates must chain to; null = clients are not asked for one. */
  clientCa: Buffer | null
  /** Longest a TLS handshake may take, ms. */
  handshakeTimeout: number
}

/** A refused TLS connection, for the log line. */
export interface TlsRefusal {
  /** Node's / OpenSSL's code: ERR_SSL_WRONG_VERSION_NUMBER, UNABLE_TO_VERIFY_LEAF_SIGNATURE, … */
  reason: string
  remoteAddress: string | undefined
  message: string
  /** The listener's address (real port). */
  listener: string
}

const HANDSHAKE_TIMEOUT = 10000

type LoadCode = 'FERRY_ERR_APP_OPTIONS' | 'FERRY_ERR_APP_TLS_RELOAD'

function read (flag: string, file: string, code: LoadCode): Buffer {
  try {
    return readFileSync(file)
  } catch (cause) {
    throw appError(code, `--${flag} ${file}: ${(cause as Error).message}`, { cause })
  }
}

/** Read the three files and check they make a context (key matches cert, PEM parses). */
function load (files: TlsFiles & { tlsCert: string, tlsKey: string }, code: LoadCode): ListenerTls {
  const cert = read('tls-cert', files.tlsCert, code)
  const key = read('tls-key', files.tlsKey, code)
  const clientCa = files.tlsClientCa === null ? null : read('tls-client-ca', files.tlsClientCa, code)
  try {
    if (clientCa !== null) checkCaBundle(clientCa)
    createSecureContext({ cert, key, ca: clientCa ?? undefined }) // fail now, not per connection
  } catch (cause) {
    throw appError(code, `TLS certificate, key or client CA not usable: ${(cause as Error).message}`, { cause })
  }
  return { cert, key, clientCa, handshakeTimeout: HANDSHAKE_TIMEOUT }
}

/**
 * Check the TLS options against the listen addresses and load the files: a tls:// listener
 * needs a certificate and key; TLS files with no tls:// listener are an error (they would
 * protect nothing). null when no listener is tls://.
 */
export function loadListenerTls (files: TlsFiles, addresses: Address[]): ListenerTls | null {
  const tlsAddresses = addresses.filter((a) => a.kind === 'tcp' && a.tls === true)
  const given = (['tlsCert', 'tlsKey', 'tlsClientCa'] as const).filter((k) => files[k] !== null)
  if (tlsAddresses.length === 0) {
    if (given.length > 0) {
      throw appError('FERRY_ERR_APP_OPTIONS', `${given.map(flagName).join(', ')} given but no --listen address is tls://host:port (TLS options would protect nothing)`)
    }
    return null
  }
  if (files.tlsCert === null || files.tlsKey === null) {
    throw appError('FERRY_ERR_APP_OPTIONS', 'a tls:// listener needs --tls-cert <file> and --tls-key <file> (PEM)')
  }
  return load({ ...files, tlsCert: files.tlsCert, tlsKey: files.tlsKey }, 'FERRY_ERR_APP_OPTIONS')
}

/**
 * SIGHUP: the same files read again (a rotated certificate, key or client CA). Throws
 * FERRY_ERR_APP_TLS_RELOAD when one is unreadable or they do not make a context; the caller
 * then keeps the running one.
 */
export function reloadListenerTls (files: TlsFiles): ListenerTls {
  if (files.tlsCert === null || files.tlsKey === null) throw appError('FERRY_ERR_APP_TLS_RELOAD', 'no --tls-cert/--tls-key to re-read')
  return load({ ...files, tlsCert: files.tlsCert, tlsKey: files.tlsKey }, 'FERRY_ERR_APP_TLS_RELOAD')
}

function flagName (k: keyof TlsFiles): string {
  return k === 'tlsCert' ? '--tls-cert' : k === 'tlsKey' ? '--tls-key' : '--tls-client-ca'
}

/**
 * After the handshake: null when the peer may go on, else why not. Without a client CA
 * every peer may; with one, Node's verdict (socket.authorized) decides.
 */
export function refusal (socket: TLSSocket, tls: ListenerTls, listener: string): TlsRefusal | null {
  if (tls.clientCa === null || socket.authorized) return null
  const noCert = socket.getPeerX509Certificate() === undefined
  return {
    reason: noCert ? 'PEER_DID_NOT_RETURN_A_CERTIFICATE' : String(socket.authorizationError ?? 'UNAUTHORIZED'),
    remoteAddress: socket.remoteAddress,
    message: noCert ? 'the client presented no certificate (--tls-client-ca requires one)' : `the client certificate was not accepted: ${String(socket.authorizationError)}`,
    listener
  }
}

/** A handshake that failed before it finished (tls.Server 'tlsClientError'). */
export function handshakeRefusal (err: NodeJS.ErrnoException, socket: Socket, listener: string): TlsRefusal {
  return { reason: err.code ?? 'ERR_TLS_HANDSHAKE', remoteAddress: socket.remoteAddress, message: err.message, listener }
}
