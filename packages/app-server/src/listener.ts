/**
 * Listeners: one net.Server per address (unix or tcp). A stale unix socket file (nobody
 * accepting: ECONNREFUSED) is removed and replaced; a live one is an error, never a takeover.
 * Each connection is sniffed by its first byte: 0x89 (the native preface) or uwsgi.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import { type Address, formatAddress, PREFACE } from '@ferry/protocol'
import { appError } from './errors.js'

export interface BoundListener {
  address: Address
  server: net.Server
  /** Canonical form with the real port. */
  text: string
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

export async function listen (address: Address, socketMode: number | null, onConnection: (socket: net.Socket, first: Buffer, kind: ConnectionKind) => void): Promise<BoundListener> {
  if (address.kind === 'unix') await clearStaleSocket(address.path)
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
    // A peer that half-closes before sending a byte has nothing to serve: close our side
    // too (allowHalfOpen would otherwise keep the socket open for good).
    const onEmptyEnd = (): void => { socket.destroy() }
    socket.once('end', onEmptyEnd)
    socket.once('data', (first: Buffer) => {
      socket.off('end', onEmptyEnd)
      onConnection(socket, first, first[0] === PREFACE[0] ? 'native' : 'uwsgi')
    })
    socket.on('error', () => {}) // the session / uwsgi handler log what matters
  })
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
    if (socketMode !== null) chmodSync(address.path, socketMode)
  } else {
    const a = server.address() as net.AddressInfo
    bound = { kind: 'tcp', host: address.host, port: a.port }
  }
  return { address: bound, server, text: formatAddress(bound) }
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
