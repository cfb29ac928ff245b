/**
 * Builds the RequestHead for a client request straight from Node's `rawHeaders`: lower-case
 * names, hop-by-hop headers stripped (Connection and the names it lists, Keep-Alive, TE,
 * Transfer-Encoding, Upgrade, Proxy-*), trusted facts in the head's own fields (client
 * address and port from the socket, scheme, authority, request id, server name and port).
 *
 * X-Forwarded-For / -Proto / -Host, Forwarded and X-Real-IP are believed only from peers
 * listed in `forwardedAllowIps` (gunicorn's forwarded_allow_ips); from anyone else they are
 * dropped so the app never sees a forged client address.
 */
import type { IncomingMessage } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import type { Socket } from 'node:net'
import type { RequestHead } from '@ferry/protocol'

export type ClientRequest = IncomingMessage | Http2ServerRequest

export interface HeadOptions {
  /** Peers whose X-Forwarded-* headers are believed ('*' = all). Empty = none. */
  forwardedAllowIps: ReadonlySet<string>
  /** SERVER_NAME for the app; '' = the local address of the connection. */
  serverName: string
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade', 'http2-settings'])
const FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-real-ip'])

/** Cheap unique request ids: a random per-process prefix and a counter. */
const ID_PREFIX = `${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0')}${process.pid.toString(16)}-`
let idCounter = 0
export function nextRequestId (): string {
  return ID_PREFIX + (++idCounter).toString(36)
}

interface SocketFacts {
  remoteAddress: string
  remotePort: number
  localAddress: string
  localPort: number
  encrypted: boolean
}

const kFacts = Symbol('ferry.socketFacts')

/** Address facts cached on the socket: getpeername/getsockname once per connection. */
function socketFacts (socket: Socket): SocketFacts {
  const s = socket as Socket & { [kFacts]?: SocketFacts, encrypted?: boolean }
  let f = s[kFacts]
  if (f === undefined) {
    f = {
      remoteAddress: s.remoteAddress ?? '',
      remotePort: s.remotePort ?? 0,
      localAddress: s.localAddress ?? '',
      localPort: s.localPort ?? 0,
      encrypted: s.encrypted === true
    }
    s[kFacts] = f
  }
  return f
}

function connectionTokens (value: string, into: Set<string>): void {
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase()
    if (token !== '' && token !== 'close' && token !== 'keep-alive') into.add(token)
  }
}

function firstForwarded (value: string): string {
  const comma = value.indexOf(',')
  return (comma < 0 ? value : value.slice(0, comma)).trim()
}

/**
 * The head for `req`. `requestId` is fastify's request.id (createFront generates it with
 * nextRequestId, or takes x-request-id when told to trust it). `bodyLength`: 0 no body, N Content-Length, -1 streamed (chunked, or
 * HTTP/2 without content-length).
 */
export function buildRequestHead (req: ClientRequest, method: string, url: string, requestId: string, options: HeadOptions): RequestHead {
  const raw = req.rawHeaders
  const headers: string[] = []
  let authority = ''
  let contentLength = -2
  let chunked = false
  let listed: Set<string> | null = null
  let forwardedFor = ''
  let forwardedProto = ''
  let forwarded = false
  const facts = socketFacts(req.socket as Socket)
  const trustForwarded = options.forwardedAllowIps.size > 0 &&
    (options.forwardedAllowIps.has('*') || options.forwardedAllowIps.has(facts.remoteAddress))

  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name.charCodeAt(0) === 58) { // ':' HTTP/2 pseudo-header
      if (name === ':authority') authority = value
      continue
    }
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connectionTokens(value, listed ??= new Set())
      else if (name === 'transfer-encoding') chunked = true
      continue
    }
    if (name.startsWith('proxy-')) continue
    if (FORWARDED.has(name)) {
      if (!trustForwarded) continue
      forwarded = true
      if (name === 'x-forwarded-for' && forwardedFor === '') forwardedFor = firstForwarded(value)
      else if (name === 'x-forwarded-proto' && forwardedProto === '') forwardedProto = firstForwarded(value)
    } else if (name === 'host') {
      if (authority === '') authority = value
    } else if (name === 'content-length') {
      contentLength = Number(value)
    }
    headers.push(name, value)
  }

  if (listed !== null && listed.size > 0) {
    let w = 0
    for (let r = 0; r < headers.length; r += 2) {
      if (listed.has(headers[r]!)) continue
      headers[w++] = headers[r]!
      headers[w++] = headers[r + 1]!
    }
    headers.length = w
  }

  let bodyLength: number
  if (chunked) bodyLength = -1
  else if (contentLength >= 0) bodyLength = contentLength
  else if (req.httpVersionMajor === 2) bodyLength = (req as Http2ServerRequest).stream.endAfterHeaders ? 0 : -1
  else bodyLength = 0

  let scheme = facts.encrypted ? 'https' : 'http'
  let remoteAddress = facts.remoteAddress
  if (forwarded) {
    if (forwardedFor !== '') remoteAddress = forwardedFor
    if (forwardedProto === 'https' || forwardedProto === 'http') scheme = forwardedProto
  }

  return {
    method,
    path: url,
    authority,
    scheme,
    headers,
    remoteAddress,
    remotePort: facts.remotePort,
    requestId,
    bodyLength,
    serverName: options.serverName === '' ? facts.localAddress : options.serverName,
    serverPort: facts.localPort,
    protocol: req.httpVersionMajor === 2 ? 'HTTP/2' : req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1'
  }
}

/** Response headers a proxy must not pass on (hop-by-hop), lower-case. */
export const RESPONSE_HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer'])
