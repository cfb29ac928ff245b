/**
 * The front's side of a WebSocket upgrade before the node answers: the server's 'upgrade'
 * listener routes the request through fastify (so routes, static files and hooks decide as
 * for any request) with a ServerResponse on the raw socket; a forwarded one is checked here
 * and its head prepared for the node (docs/protocol.md §7.1). What the node's 101 may add to
 * the client's 101 (subprotocol, extra headers) is taken from its head here too.
 */
import { type IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { RequestHead, ResponseHead } from '@ferry/protocol'
import { FRONT_ERRORS, type FrontErrorCode } from './errors.js'
import type { AccessLogger } from './access-log.js'
import type { Upgrade } from './exchange.js'

/** On the request: the client's socket and the bytes past the head (a WebSocket upgrade). */
export const kUpgrade = Symbol('ferry.upgrade')
/** On the request: what the node's 101 chose (read by the ws server's hooks). */
export const upgradeChoice = Symbol('ferry.upgradeChoice')

export interface UpgradeChoice {
  protocol: string | false
  /** Extra header lines for the client's 101 ("name: value"), already checked. */
  headers: string[]
}

const KEY = /^[+/0-9A-Za-z]{22}==$/
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
/** Headers of the node's 101 that the front writes itself (or that make no sense there). */
const OWN = new Set(['connection', 'upgrade', 'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'content-length', 'transfer-encoding', 'keep-alive'])

/**
 * Listen for upgrades on the front's HTTP/1 server and route each through fastify.
 * `Upgrade: websocket` requests are marked for the forwarding route (kUpgrade); any other
 * upgrade (e.g. curl's h2c) is served as a plain request, its Upgrade ignored (RFC 9110 §7.8).
 */
export function listenForUpgrades (server: { on (event: 'upgrade', l: (req: IncomingMessage, socket: Socket, head: Buffer) => void): unknown }, route: (req: IncomingMessage, res: ServerResponse) => void): void {
  server.on('upgrade', (req, socket, head) => {
    // Errors on the raw socket before a handler owns it must not crash the front.
    socket.on('error', () => socket.destroy())
    const res = new ServerResponse(req)
    res.shouldKeepAlive = false
    res.assignSocket(socket)
    res.on('finish', () => { socket.end() })
    const ws = (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
    if (ws) (req as IncomingMessage & { [kUpgrade]?: Upgrade })[kUpgrade] = { socket, head }
    else if (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') {
      // its body would be in the raw socket, past the parser: refuse rather than misread it
      res.writeHead(400, { 'content-type': 'text/plain' }).end('Upgrade with a body is not supported\n')
      return
    }
    route(req, res)
  })
}

/** A malformed WebSocket handshake and how to answer it; null when it is fine. */
export function checkUpgrade (req: IncomingMessage): { answer (res: ServerResponse, requestId: string): void } | null {
  const version = req.headers['sec-websocket-version']
  const key = req.headers['sec-websocket-key']
  let code: FrontErrorCode | null = null
  let detail = ''
  if (req.method !== 'GET') {
    code = 'FERRY_ERR_FRONT_WS_HANDSHAKE'
    detail = `method ${req.method ?? ''}`
  } else if (typeof key !== 'string' || !KEY.test(key)) {
    code = 'FERRY_ERR_FRONT_WS_HANDSHAKE'
    detail = 'missing or invalid Sec-WebSocket-Key'
  } else if (version !== '13' && version !== '8') {
    code = 'FERRY_ERR_FRONT_WS_VERSION'
    detail = `Sec-WebSocket-Version ${JSON.stringify(version ?? null)}`
  }
  if (code === null) return null
  const c = code
  return {
    answer (res, requestId) {
      const info = FRONT_ERRORS[c]
      const body = JSON.stringify({ statusCode: info.statusCode, code: c, message: `${info.message}: ${detail}`, requestId })
      const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'x-request-id': requestId }
      if (c === 'FERRY_ERR_FRONT_WS_VERSION') headers['sec-websocket-version'] = '13'
      res.writeHead(info.statusCode, headers).end(body)
    }
  }
}

/** The head for the node: the upgrade kept, extensions dropped (the front negotiates none), a streamed body. */
export function forUpgrade (head: RequestHead): void {
  const h = head.headers
  let w = 0
  for (let r = 0; r < h.length; r += 2) {
    if (h[r] === 'sec-websocket-extensions') continue
    h[w++] = h[r]!
    h[w++] = h[r + 1]!
  }
  h.length = w
  h.push('connection', 'upgrade', 'upgrade', 'websocket')
  head.bodyLength = -1
}

/** What the node's 101 asks of the client's 101; header lines that could split the response are dropped (and logged). */
export function choiceFrom (head: ResponseHead, log: AccessLogger, requestId: string): UpgradeChoice {
  let protocol: string | false = false
  const headers: string[] = []
  const h = head.headers
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!
    const value = h[i + 1]!
    if (name === 'sec-websocket-protocol') {
      if (TOKEN.test(value)) protocol = value
      continue
    }
    if (OWN.has(name)) continue
    if (!TOKEN.test(name) || !VALUE.test(value)) {
      log.warn({ reqId: requestId, header: name }, 'websocket 101: header from the node dropped (not writable in HTTP/1.1)')
      continue
    }
    headers.push(`${name}: ${value}`)
  }
  return { protocol, headers }
}
