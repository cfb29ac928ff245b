/**
 * Responses on the worker side. `LightResponse` replaces globalThis.Response inside the
 * worker (as @hono/node-server does): `new Response('hi', init)` only records status, body
 * and headers init; a real Response is built only when the handler reads a property that
 * needs one. `unpackResponse()` turns any Response into a flat head plus one of:
 *   bytes (string/Uint8Array/ArrayBuffer bodies: no await, no ReadableStream) or
 *   a ReadableStream to pump chunk by chunk.
 */

const GlobalResponse = globalThis.Response
const kCache = Symbol('ferry.responseCache')
const kReal = Symbol('ferry.realResponse')
const kInit = Symbol('ferry.init')
const kBodyArg = Symbol('ferry.bodyArg')

type Cache = [status: number, body: unknown, headers: unknown]

const encoder = new TextEncoder()

/**
 * Streams handed out by `.body` of a LightResponse whose body is known bytes, mapped to those
 * bytes: `new Response(res.body, res)` (what middleware does to make headers mutable) keeps
 * the fast path instead of turning a string into a stream.
 */
const knownBodies = new WeakMap<ReadableStream, unknown>()

function isFastBody (body: unknown): boolean {
  return body == null || typeof body === 'string' || body instanceof Uint8Array || body instanceof ArrayBuffer ||
    (typeof body === 'object' && typeof (body as ReadableStream).getReader === 'function')
}

interface Light {
  [kCache]?: Cache
  [kReal]?: Response
  [kInit]?: ResponseInit
  [kBodyArg]?: unknown
}

function realOf (self: Light): Response {
  let r = self[kReal]
  if (r === undefined) {
    const cache = self[kCache]
    const init = self[kInit]
    const headers = cache !== undefined && cache[2] instanceof Headers ? cache[2] : init?.headers
    r = self[kReal] = new GlobalResponse(self[kBodyArg] as ConstructorParameters<typeof GlobalResponse>[0], {
      status: init?.status,
      statusText: init?.statusText,
      headers: headers as ConstructorParameters<typeof Headers>[0]
    })
    delete self[kCache]
  }
  return r
}

export class LightResponse {
  static [Symbol.hasInstance] (instance: unknown): boolean {
    return instance instanceof GlobalResponse || (typeof instance === 'object' && instance !== null && (kCache in instance || kReal in instance))
  }

  /** Response.json() building a LightResponse (the global one would build a full Response). */
  static json (data: unknown, init?: ResponseInit): Response {
    const body = JSON.stringify(data)
    if (body === undefined) throw new TypeError('Value is not JSON serializable')
    const headers = new Headers(init?.headers as ConstructorParameters<typeof Headers>[0])
    if (!headers.has('content-type')) headers.set('content-type', 'application/json')
    return new LightResponse(body, { status: init?.status, statusText: init?.statusText, headers }) as unknown as Response
  }

  constructor (body?: unknown, init?: ResponseInit) {
    const self = this as unknown as Light
    if (body instanceof ReadableStream && !body.locked) {
      const known = knownBodies.get(body)
      if (known !== undefined) body = known
    }
    self[kBodyArg] = body
    self[kInit] = init
    if (init?.status !== undefined && (init.status < 200 || init.status > 599)) {
      throw new RangeError(`init["status"] must be in the range of 200 to 599, inclusive. Got ${init.status}`)
    }
    if (isFastBody(body)) self[kCache] = [init?.status ?? 200, body ?? null, init?.headers]
  }

  get headers (): Headers {
    const self = this as unknown as Light
    const cache = self[kCache]
    if (cache !== undefined) {
      if (!(cache[2] instanceof Headers)) {
        const h = new Headers(cache[2] as ConstructorParameters<typeof Headers>[0])
        if (typeof cache[1] === 'string' && !h.has('content-type')) h.set('content-type', 'text/plain;charset=UTF-8')
        cache[2] = h
      }
      return cache[2] as Headers
    }
    return realOf(self).headers
  }

  get status (): number {
    const self = this as unknown as Light
    return self[kCache]?.[0] ?? realOf(self).status
  }

  get ok (): boolean {
    const s = this.status
    return s >= 200 && s < 300
  }
}

Object.defineProperty(LightResponse.prototype, 'body', {
  get (this: Light) {
    const cache = this[kCache]
    if (cache !== undefined && (typeof cache[1] === 'string' || cache[1] instanceof Uint8Array || cache[1] instanceof ArrayBuffer)) {
      const known = cache[1]
      const stream = new ReadableStream<Uint8Array>({
        start (c) {
          c.enqueue(typeof known === 'string' ? encoder.encode(known) : known instanceof ArrayBuffer ? new Uint8Array(known) : known)
          c.close()
        }
      })
      knownBodies.set(stream, known)
      return stream
    }
    if (cache !== undefined && cache[1] === null) return null
    return realOf(this).body
  }
})
// Cheap answers while the response is still light (middleware reads these on every request).
const lightValues: Record<string, (self: Light) => unknown> = {
  bodyUsed: () => false,
  redirected: () => false,
  statusText: (self) => self[kInit]?.statusText ?? '',
  type: () => 'default',
  url: () => ''
}
for (const k of Object.keys(lightValues)) {
  Object.defineProperty(LightResponse.prototype, k, {
    get (this: Light) {
      if (this[kCache] !== undefined) return lightValues[k]!(this)
      return (realOf(this) as unknown as Record<string, unknown>)[k]
    }
  })
}
for (const k of ['arrayBuffer', 'blob', 'bytes', 'clone', 'formData', 'json', 'text']) {
  Object.defineProperty(LightResponse.prototype, k, {
    value: function (this: Light) {
      const r = realOf(this) as unknown as Record<string, () => unknown>
      return r[k]!.call(r)
    }
  })
}
Object.setPrototypeOf(LightResponse, GlobalResponse)
Object.setPrototypeOf(LightResponse.prototype, GlobalResponse.prototype)

/** Make `new Response()` in handler code build LightResponses (worker threads only). */
export function installLightResponse (): void {
  if (globalThis.Response !== (LightResponse as unknown)) {
    (globalThis as { Response: unknown }).Response = LightResponse
  }
}

export interface Unpacked {
  status: number
  headers: string[]
  /** Known body bytes (fast path), or null when `stream` is set or there is no body. */
  bytes: Uint8Array | null
  stream: ReadableStream<Uint8Array> | null
}

function flattenInit (init: unknown, out: string[]): void {
  if (init == null) return
  if (init instanceof Headers) {
    for (const [k, v] of init) out.push(k, v)
    return
  }
  if (Array.isArray(init)) {
    for (const pair of init as [string, string][]) out.push(String(pair[0]).toLowerCase(), String(pair[1]))
    return
  }
  if (typeof (init as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const [k, v] of init as Iterable<[string, string]>) out.push(String(k).toLowerCase(), String(v))
    return
  }
  for (const k of Object.keys(init as Record<string, string>)) {
    const v = (init as Record<string, string | string[]>)[k]
    const name = k.toLowerCase()
    if (Array.isArray(v)) for (const x of v) out.push(name, String(x))
    else out.push(name, String(v))
  }
}

function hasHeader (list: string[], name: string): boolean {
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return true
  return false
}

export function unpackResponse (res: Response): Unpacked | null {
  const light = res as unknown as Light
  const cache = light[kCache]
  if (cache !== undefined) {
    const headers: string[] = []
    flattenInit(cache[2], headers)
    const body = cache[1]
    if (body === null) return { status: cache[0], headers, bytes: null, stream: null }
    if (typeof body === 'string') {
      if (!hasHeader(headers, 'content-type')) headers.push('content-type', 'text/plain;charset=UTF-8')
      return { status: cache[0], headers, bytes: encoder.encode(body), stream: null }
    }
    if (body instanceof Uint8Array) return { status: cache[0], headers, bytes: body, stream: null }
    if (body instanceof ArrayBuffer) return { status: cache[0], headers, bytes: new Uint8Array(body), stream: null }
    return { status: cache[0], headers, bytes: null, stream: body as ReadableStream<Uint8Array> }
  }
  if (!(res instanceof GlobalResponse) && light[kReal] === undefined) return null
  const real = light[kReal] ?? res
  const headers: string[] = []
  for (const [k, v] of real.headers) headers.push(k, v)
  return { status: real.status, headers, bytes: null, stream: real.body }
}

/** Body length in bytes when known without reading it (bytes body or Content-Length); -1 if not. */
export function knownBodyLength (res: Response): number {
  const cache = (res as unknown as Light)[kCache]
  if (cache !== undefined) {
    const b = cache[1]
    if (b === null) return 0
    if (typeof b === 'string') return Buffer.byteLength(b)
    if (b instanceof Uint8Array || b instanceof ArrayBuffer) return b.byteLength
  }
  const cl = res.headers.get('content-length')
  if (cl === null) return res.body === null ? 0 : -1
  const n = Number(cl)
  return Number.isSafeInteger(n) && n >= 0 ? n : -1
}
