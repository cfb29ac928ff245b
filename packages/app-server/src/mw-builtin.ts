/**
 * Built-in middleware (compression is in mw-compress.ts):
 *   request-id   x-request-id on every response (the id the front put in the frame)
 *   cors         CORS (Fetch standard): answers preflight OPTIONS itself, adds the
 *                Access-Control-* headers to the others
 *   body-limit   request body size limit: 413 when Content-Length says too much, and counts
 *                streamed bytes (a chunked upload past the limit fails with 413 as well)
 * Options are plain JSON (they cross into the worker); each factory checks its own and throws
 * FERRY_ERR_APP_OPTIONS on a bad one.
 */
import { APP_SERVER_ERRORS, appError } from './errors.js'
import type { HandlerContext } from './loop.js'
import type { Middleware } from './middleware.js'

function bad (what: string): Error {
  return appError('FERRY_ERR_APP_OPTIONS', what)
}

function known (name: string, options: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(options)) if (!keys.includes(k)) throw bad(`middleware ${name}: unknown option ${JSON.stringify(k)} (known: ${keys.join(', ')})`)
}

function strings (name: string, key: string, v: unknown, fallback: string[]): string[] {
  if (v === undefined) return fallback
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean)
  if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v as string[]
  throw bad(`middleware ${name}: ${key} must be a string or a list of strings`)
}

/** A response whose headers may be changed (a fetch() Response's are immutable). */
export function mutable (res: Response): Response {
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers: res.headers })
}

// ── request-id ────────────────────────────────────────────────────────────────

export function requestId (options: Record<string, unknown>): Middleware {
  known('request-id', options, ['header'])
  const header = options.header === undefined ? 'x-request-id' : String(options.header).toLowerCase()
  return async (request, context, next) => {
    const res = mutable(await next(request))
    if (!res.headers.has(header)) res.headers.set(header, context.requestId)
    return res
  }
}

// ── cors ─────────────────────────────────────────────────────────────────────

export function cors (options: Record<string, unknown>): Middleware {
  known('cors', options, ['origins', 'methods', 'allowHeaders', 'exposeHeaders', 'credentials', 'maxAge'])
  const origins = strings('cors', 'origins', options.origins, ['*'])
  const any = origins.includes('*')
  const methods = strings('cors', 'methods', options.methods, ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE']).map((m) => m.toUpperCase())
  const allowHeaders = options.allowHeaders === undefined ? null : strings('cors', 'allowHeaders', options.allowHeaders, [])
  const expose = strings('cors', 'exposeHeaders', options.exposeHeaders, [])
  if (options.credentials !== undefined && typeof options.credentials !== 'boolean') throw bad('middleware cors: credentials must be true or false')
  const credentials = options.credentials === true
  const maxAge = options.maxAge === undefined ? null : Number(options.maxAge)
  if (maxAge !== null && (!Number.isInteger(maxAge) || maxAge < 0)) throw bad('middleware cors: maxAge must be whole seconds >= 0')
  const allowed = (origin: string): boolean => any || origins.includes(origin)
  // '*' may not be used with credentials: the origin is echoed (and Vary: Origin set) then
  const echo = !any || credentials
  const addOrigin = (h: Headers, origin: string): void => {
    h.set('access-control-allow-origin', echo ? origin : '*')
    if (echo) h.append('vary', 'Origin')
    if (credentials) h.set('access-control-allow-credentials', 'true')
  }
  return async (request, context, next) => {
    const origin = request.headers.get('origin')
    if (origin === null) {
      if (!echo) return next(request)
      // the answer depends on Origin: caches must know, even when this request had none
      const res = mutable(await next(request))
      res.headers.append('vary', 'Origin')
      return res
    }
    const preflight = request.method === 'OPTIONS' && request.headers.has('access-control-request-method')
    if (preflight) {
      const h = new Headers({ 'x-request-id': context.requestId, 'content-length': '0' })
      if (echo) h.set('vary', 'Origin')
      const method = request.headers.get('access-control-request-method')!.toUpperCase()
      if (allowed(origin) && methods.includes(method)) {
        addOrigin(h, origin)
        h.set('access-control-allow-methods', methods.join(', '))
        const asked = request.headers.get('access-control-request-headers')
        const hs = allowHeaders === null ? asked : allowHeaders.join(', ')
        if (hs !== null && hs !== '') h.set('access-control-allow-headers', hs)
        if (allowHeaders === null && asked !== null) h.append('vary', 'Access-Control-Request-Headers')
        if (maxAge !== null) h.set('access-control-max-age', String(maxAge))
      }
      // a refused preflight is a 204 without the Access-Control-* headers: the browser stops there
      return new Response(null, { status: 204, headers: h })
    }
    const res = mutable(await next(request))
    if (allowed(origin)) {
      addOrigin(res.headers, origin)
      if (expose.length > 0) res.headers.set('access-control-expose-headers', expose.join(', '))
    } else if (echo) res.headers.append('vary', 'Origin')
    return res
  }
}

// ── body-limit ───────────────────────────────────────────────────────────────

/** "1048576", "512k", "10m", "1g" → bytes. */
export function parseBytes (v: unknown): number {
  const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(String(v).trim())
  if (m === null) return Number.NaN
  const unit = (m[2] ?? '').charAt(0).toLowerCase()
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1
  return Number(m[1]) * mult
}

function tooLarge (context: HandlerContext, limit: number): Response {
  const body = `${APP_SERVER_ERRORS.FERRY_ERR_APP_BODY_TOO_LARGE.message} (${limit} bytes) (request id ${context.requestId})\n`
  return new Response(body, {
    status: 413,
    headers: { 'content-type': 'text/plain; charset=utf-8', 'x-request-id': context.requestId, 'x-ferry-error': 'FERRY_ERR_APP_BODY_TOO_LARGE' }
  })
}

export function bodyLimit (options: Record<string, unknown>): Middleware {
  known('body-limit', options, ['limit'])
  const limit = parseBytes(options.limit)
  if (!Number.isSafeInteger(limit) || limit < 0) throw bad(`middleware body-limit: limit must be bytes (e.g. 1048576, 512k, 10m), got ${JSON.stringify(options.limit)}`)
  return async (request, context, next) => {
    const declared = context.bodyLength > 0 ? context.bodyLength : Number(request.headers.get('content-length') ?? 0)
    if (declared > limit) return tooLarge(context, limit)
    const src = request.body
    if (src === null) return next(request)
    let seen = 0
    let over = false
    const counted = src.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
      transform (chunk, controller) {
        seen += chunk.byteLength
        if (seen > limit) {
          over = true
          controller.error(appError('FERRY_ERR_APP_BODY_TOO_LARGE', `${limit} bytes`))
          return
        }
        controller.enqueue(chunk)
      }
    }))
    const init: RequestInit & { duplex: 'half' } = { method: request.method, headers: request.headers, body: counted, duplex: 'half', signal: request.signal }
    let res: Response
    try {
      res = await next(new Request(request.url, init))
    } catch (err) {
      if (over) return tooLarge(context, limit)
      throw err
    }
    if (over) {
      res.body?.cancel().catch(() => {})
      return tooLarge(context, limit)
    }
    return res
  }
}
