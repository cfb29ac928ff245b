/**
 * Middleware around a fetch handler (PEP 3333's middleware, connect/Koa's `next`): a function
 * `(request, context, next) => Response | Promise<Response>` that may change the request,
 * answer by itself (short-circuit: not calling next), or change the response next() gives.
 * They run in the worker, outermost first: server-wide ones, then the mount's own.
 * No middleware configured → the handler itself runs, nothing in between.
 */
import { type FetchHandler, loadHandler } from './handler.js'
import { appError } from './errors.js'
import type { HandlerContext } from './loop.js'
import type { MiddlewareSpec } from './mounts.js'
import { bodyLimit, cors, requestId } from './mw-builtin.js'
import { compress } from './mw-compress.js'

export type Next = (request?: Request) => Promise<Response>
export type Middleware = (request: Request, context: HandlerContext, next: Next) => Response | Promise<Response>
type Factory = (options: Record<string, unknown>) => Middleware

export const BUILTIN_MIDDLEWARE: Record<string, Factory> = {
  'request-id': requestId,
  compress,
  cors,
  'body-limit': bodyLimit
}

/** Check a built-in's options on the main thread (a typo fails at start, not per request). */
export function validateMiddleware (spec: MiddlewareSpec): void {
  if (spec.url !== undefined) return
  const f = BUILTIN_MIDDLEWARE[spec.name]
  if (f === undefined) throw appError('FERRY_ERR_APP_OPTIONS', `unknown middleware ${JSON.stringify(spec.name)} (built-ins: ${Object.keys(BUILTIN_MIDDLEWARE).join(', ')}; or a module path)`)
  f(spec.options ?? {})
}

async function loadOne (spec: MiddlewareSpec, generation: number): Promise<Middleware> {
  if (spec.url === undefined) {
    const f = BUILTIN_MIDDLEWARE[spec.name]
    if (f === undefined) throw appError('FERRY_ERR_APP_MIDDLEWARE_LOAD', `unknown built-in ${spec.name}`)
    return f(spec.options ?? {})
  }
  const url = generation === 0 ? spec.url : `${spec.url}${spec.url.includes('?') ? '&' : '?'}ferry-reload=${generation}`
  try {
    // the same module shapes as a handler: a default-exported function
    return await loadHandler(url) as unknown as Middleware
  } catch (cause) {
    throw appError('FERRY_ERR_APP_MIDDLEWARE_LOAD', `${spec.url}: ${(cause as Error)?.message ?? cause}`, { cause })
  }
}

/** The handler module wrapped in its middleware, as one FetchHandler. */
export async function loadStack (handlerUrl: string, specs: MiddlewareSpec[], generation: number): Promise<FetchHandler> {
  const handler = await loadHandler(handlerUrl)
  if (specs.length === 0) return handler
  const chain = await Promise.all(specs.map((s) => loadOne(s, generation)))
  return compose(chain, handler)
}

export function compose (chain: Middleware[], handler: FetchHandler): FetchHandler {
  const n = chain.length
  return (request, context, exec) => {
    const ctx = context as HandlerContext
    const run = (i: number, req: Request): Promise<Response> => {
      try {
        if (i === n) return Promise.resolve(handler(req, ctx, exec) as Response)
        return Promise.resolve(chain[i]!(req, ctx, (next?: Request) => run(i + 1, next ?? req)))
      } catch (err) {
        return Promise.reject(err)
      }
    }
    return run(0, request)
  }
}
