/**
 * Listeners: one net.Server per address (unix or tcp; a tls.Server for tls://). A stale unix
 * socket file (nobody accepting: ECONNREFUSED) is removed and replaced; a live one is an
 * error, never a takeover. Each connection is sniffed by its first byte: 0x89 (the native
 * preface) or uwsgi — on a tls:// listener the first decrypted byte, so both codecs work
 * over TLS. A TLS connection that fails its handshake or the client-certificate check is
 * closed before anything is read from it, and reported through `onRefused`. `setTls` swaps
 * a tls:// listener's certificate, key and client CA for new connections (SIGHUP); open
 * connections keep the context they were made with.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { type Address, formatAddress, PREFACE } from '@ferry/protocol'
import { appError } from './errors.js'
import { handshakeRefusal, type ListenerTls, refusal, type TlsRefusal } from './tls.js'

export interface BoundListener {
  address: Address
  server: net.Server
  /** Canonical form with the real port. */
  text: string
  /** tls:// only (else null): new connections get these certificates; open ones are untouched. */
  setTls: ((t: ListenerTls) => void) | null
}

function probeUnix (path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path)
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

async function clearStaleSocket (path: string): Promise<void> {
  let isSocket = false
  try {
    isSocket = lstatSync(path).isSocket()
  } catch {
    return // nothing there
  }
  if (!isSocket) throw appError('FERRY_ERR_APP_LISTEN', `${path} exists and is not a socket`)
  if (await probeUnix(path)) throw appError('FERRY_ERR_APP_ADDRESS_IN_USE', `unix:${path}`)
  unlinkSync(path)
}

export type ConnectionKind = 'native' | 'uwsgi'

export interface ListenOptions {
  /** e.g. 0o660 for unix sockets; null leaves the umask's mode. */
  socketMode: number | null
  /** Certificates for tls:// addresses (required for them). */
  tls: ListenerTls | null
  onConnection (socket: net.Socket, first: Buffer, kind: ConnectionKind): void
  /** A TLS connection refused (handshake or client certificate); it is closed already. */
  onRefused (r: TlsRefusal): void
}

export async function listen (address: Address, options: ListenOptions): Promise<BoundListener> {
  const { onConnection } = options
  if (address.kind === 'unix') await clearStaleSocket(address.path)
  const accept = (socket: net.Socket): void => {
    // A peer that half-closes before sending a byte has nothing to serve: close our side
    // too (allowHalfOpen would otherwise keep the socket open for good).
    const onEmptyEnd = (): void => { socket.destroy() }
    socket.once('end', onEmptyEnd)
    socket.once('data', (first: Buffer) => {
      socket.off('end', onEmptyEnd)
      onConnection(socket, first, first[0] === PREFACE[0] ? 'native' : 'uwsgi')
    })
    socket.on('error', () => {}) // the session / uwsgi handler log what matters
  }
  let server: net.Server
  let text = formatAddress(address) // the real port once bound
  let setTls: BoundListener['setTls'] = null
  if (address.kind === 'tcp' && address.tls === true) {
    if (options.tls === null) throw appError('FERRY_ERR_APP_OPTIONS', `${formatAddress(address)} needs --tls-cert and --tls-key`)
    let t: ListenerTls = options.tls
    const secure = tls.createServer({
      noDelay: true,
      allowHalfOpen: true,
      cert: t.cert,
      key: t.key,
      ca: t.clientCa ?? undefined,
      // Node checks the chain when the handshake ends; refusal() decides (and says why)
      requestCert: t.clientCa !== null,
      rejectUnauthorized: false,
      handshakeTimeout: t.handshakeTimeout
    }, (socket) => {
      const refused = refusal(socket, t, text)
      if (refused !== null) {
        socket.destroy()
        options.onRefused(refused)
        return
      }
      accept(socket)
    })
    secure.on('tlsClientError', (err: NodeJS.ErrnoException, socket) => {
      socket.destroy()
      options.onRefused(handshakeRefusal(err, socket, text))
    })
    setTls = (next: ListenerTls): void => {
      // a fresh context: new session-ticket keys too, so no session from the old one (whose
      // client certificate the old CA verified) is resumed. requestCert stays as it was:
      // the client CA file is the same path, so it is there or not for the listener's life.
      secure.setSecureContext({ cert: next.cert, key: next.key, ca: next.clientCa ?? undefined })
      t = next
    }
    server = secure
  } else {
    server = net.createServer({ noDelay: true, allowHalfOpen: true }, accept)
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') reject(appError('FERRY_ERR_APP_ADDRESS_IN_USE', formatAddress(address), { cause: err }))
      else reject(appError('FERRY_ERR_APP_LISTEN', `${formatAddress(address)}: ${err.message}`, { cause: err }))
    }
    server.once('error', onError)
    const done = (): void => {
      server.off('error', onError)
      resolve()
    }
    if (address.kind === 'unix') server.listen({ path: address.path, backlog: 1024 }, done)
    else server.listen({ host: address.host, port: address.port, backlog: 1024 }, done)
  })
  let bound: Address = address
  if (address.kind === 'unix') {
    if (options.socketMode !== null) chmodSync(address.path, options.socketMode)
  } else {
    const a = server.address() as net.AddressInfo
    bound = { ...address, port: a.port }
  }
  text = formatAddress(bound)
  return { address: bound, server, text, setTls }
}

/**
 * Stop accepting (open connections are not waited for: they drain on their own terms).
 * A unix socket file is removed at once.
 */
export function closeListener (l: BoundListener): void {
  l.server.close()
  if (l.address.kind === 'unix') {
    try { unlinkSync(l.address.path) } catch {}
  }
}
