/**
 * `ferry` — the fastify plugin. Inside an existing fastify app it adds static folders and
 * forwards prefix routes (and, by default, every request nothing else answered) to upstream
 * pools, so users keep their rate-limit, compression, helmet and auth plugins in front of it:
 *
 *   app.register(ferry, { upstreams: ['unix:/run/app.sock'], static: [{ dir: './public' }] })
 *
 * The forwarding routes live in an encapsulated child whose only content-type parser passes
 * the body through untouched: fastify never reads a forwarded body, the exchange streams it.
 * Static files are registered in that child too, so a missing file falls through to the
 * app tier (nginx `try_files $uri @app`).
 */
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Target } from './exchange.js'
import { Forwarder } from './forwarder.js'
import type { FerryOptions } from './options.js'
import { listenForUpgrades } from './ws-upgrade.js'

declare module 'fastify' {
  interface FastifyInstance {
    ferry: Forwarder
  }
}

function passThrough (_req: FastifyRequest, _payload: unknown, done: (err: Error | null, body?: unknown) => void): void {
  done(null)
}

function handlerFor (fw: Forwarder, target: Target) {
  return function forward (request: FastifyRequest, reply: FastifyReply): void {
    fw.handle(request, reply, target)
  }
}

async function ferryPlugin (app: FastifyInstance, options: FerryOptions): Promise<void> {
  const fw = new Forwarder(options, app.log)
  const o = fw.options
  app.decorate('ferry', fw)
  // WebSockets first: an upgraded socket would keep server.close() waiting.
  app.addHook('preClose', (done) => { fw.closeWebSockets(); done() })
  app.addHook('onClose', async () => { fw.close() })
  // WebSocket upgrades (HTTP/1.1): routed through fastify like any request; the forwarding
  // routes carry them to the app tier (docs/protocol.md §7.1). HTTP/2 clients (RFC 8441
  // extended CONNECT) are not supported: an h2 server emits no 'upgrade'.
  if (o.websocket) listenForUpgrades(app.server, (req, res) => app.routing(req, res))

  await app.register(async function ferryRoutes (child) {
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('*', passThrough)
    if (o.catchAll !== false) child.setNotFoundHandler(handlerFor(fw, fw.target(o.catchAll)))
    o.static.forEach((s, i) => {
      child.register(fastifyStatic, {
        root: s.dir,
        prefix: s.prefix,
        decorateReply: i === 0,
        wildcard: true,
        index: ['index.html'],
        etag: true,
        lastModified: true,
        cacheControl: true,
        maxAge: s.maxAge,
        immutable: s.immutable,
        dotfiles: 'ignore'
      })
    })
    for (const r of o.routes) {
      const h = handlerFor(fw, fw.target(r.pool, r.timeout, r.idleTimeout))
      child.all(r.prefix, h)
      child.all(r.prefix === '/' ? '/*' : `${r.prefix}/*`, h)
    }
  })
}

export const ferry = fp(ferryPlugin, { fastify: '5.x', name: '@ferry/front' })
