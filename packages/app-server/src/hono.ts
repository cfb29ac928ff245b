/**
 * Hono's WebSocket helper for ferry: `import { upgradeWebSocket } from '@ferry/app-server/hono'`
 * and write routes exactly as on Deno or Bun:
 *
 *   app.get('/ws', upgradeWebSocket((c) => ({
 *     onMessage (event, ws) { ws.send(`echo: ${event.data}`) },
 *     onClose (event) { console.log('closed', event.code) }
 *   })))
 *
 * ferry passes its handler context as Hono's `c.env`; the helper calls
 * `c.env.upgradeWebSocket(c.req.raw)` and wires the socket's events to Hono's. `hono` is a
 * peer dependency: only apps that import this module need it.
 */
import { defineWebSocketHelper, type UpgradeWebSocket, WSContext, type WSReadyState } from 'hono/ws'
import type { HandlerContext } from './loop.js'
import type { FerryWebSocket, UpgradeOptions } from './ws-socket.js'

export const upgradeWebSocket: UpgradeWebSocket<FerryWebSocket, UpgradeOptions> = defineWebSocketHelper<FerryWebSocket, UpgradeOptions>(async (c, events, options) => {
  if ((c.req.header('upgrade') ?? '').toLowerCase() !== 'websocket') return
  const ctx = c.env as HandlerContext | undefined
  if (ctx === undefined || typeof ctx.upgradeWebSocket !== 'function') {
    throw new TypeError('@ferry/app-server/hono: c.env is not a ferry handler context (is this app running under ferry app?)')
  }
  const offered = c.req.header('sec-websocket-protocol')?.split(',')[0]?.trim()
  const { socket, response } = ctx.upgradeWebSocket(c.req.raw, { ...(offered !== undefined && offered !== '' ? { protocol: offered } : {}), ...options })
  const ws = new WSContext<FerryWebSocket>({
    send: (source) => socket.send(source),
    close: (code, reason) => socket.close(code, reason),
    raw: socket,
    get readyState () { return socket.readyState as WSReadyState },
    get protocol () { return socket.protocol },
    url: new URL(socket.url)
  })
  socket.onopen = (evt) => events.onOpen?.(evt, ws)
  socket.onmessage = (evt) => events.onMessage?.(evt as MessageEvent, ws)
  socket.onclose = (evt) => events.onClose?.(evt as Parameters<NonNullable<typeof events.onClose>>[0], ws)
  socket.onerror = (evt) => events.onError?.(evt, ws)
  return response
})
