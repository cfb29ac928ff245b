/**
 * A lazy WHATWG Request for the worker side (the trick of @hono/node-server): an object whose
 * prototype chain ends in Request.prototype (so `instanceof Request` holds) and whose headers,
 * signal and body materialize on first use. `text()/json()/arrayBuffer()/bytes()` read the
 * body chunks straight from the port without a ReadableStream; anything else (clone,
 * formData, blob, cache…) builds a real Request once and delegates to it.
 *
 * The body is pulled: chunks from the main thread wait in BodySource; each chunk the handler
 * takes is reported with `onTake(n)` so the main thread returns flow-control credit upstream.
 */

const GlobalRequest = globalThis.Request

/** Request-body chunks for one request, fed by the main thread, pulled by the handler. */
export class BodySource {
  chunks: Uint8Array[] = []
  ended = false
  error: Error | null = null
  taken = false
  #waiter: (() => void) | null = null
  #onTake: (n: number) => void

  constructor (onTake: (n: number) => void, ended: boolean) {
    this.#onTake = onTake
    this.ended = ended
  }

  push (chunk: Uint8Array): void {
    this.chunks.push(chunk)
    this.#wake()
  }

  end (): void {
    this.ended = true
    this.#wake()
  }

  fail (err: Error): void {
    if (this.ended) return
    this.error = err
    this.ended = true
    this.#wake()
  }

  #wake (): void {
    const w = this.#waiter
    if (w !== null) {
      this.#waiter = null
      w()
    }
  }

  /** Next chunk, or null at the end. */
  async read (): Promise<Uint8Array | null> {
    while (this.chunks.length === 0) {
      if (this.error !== null) throw this.error
      if (this.ended) return null
      await new Promise<void>((resolve) => { this.#waiter = resolve })
    }
    const c = this.chunks.shift()!
    this.#onTake(c.byteLength)
    return c
  }

  async readAll (): Promise<Uint8Array> {
    const parts: Uint8Array[] = []
    let total = 0
    for (;;) {
      const c = await this.read()
      if (c === null) break
      parts.push(c)
      total += c.byteLength
    }
    if (parts.length === 1) return parts[0]!
    const out = new Uint8Array(total)
    let off = 0
    for (const p of parts) {
      out.set(p, off)
      off += p.byteLength
    }
    return out
  }

  stream (): ReadableStream<Uint8Array> {
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        const c = await this.read()
        if (c === null) controller.close()
        else controller.enqueue(c)
      }
    }, { highWaterMark: 0 })
  }
}

const kState = Symbol('ferry.request')
const kReal = Symbol('ferry.realRequest')
const kHeaders = Symbol('ferry.headers')
const kBody = Symbol('ferry.body')
const kAbort = Symbol('ferry.abort')
/** Why the request was aborted before anyone read its signal. */
const kAborted = Symbol('ferry.aborted')

export interface RequestState {
  method: string
  url: string
  headers: string[]
  /** null when the request has no body. */
  body: BodySource | null
}

interface LazyRequest {
  [kState]: RequestState
  [kReal]?: Request
  [kHeaders]?: Headers
  [kBody]?: ReadableStream<Uint8Array> | null
  [kAbort]?: AbortController
  [kAborted]?: string
}

const textDecoder = new TextDecoder()

function bodyUnusable (): TypeError {
  return new TypeError('Body is unusable: Body has already been read')
}

function headersOf (self: LazyRequest): Headers {
  let h = self[kHeaders]
  if (h === undefined) {
    h = new Headers()
    const list = self[kState].headers
    for (let i = 0; i < list.length; i += 2) h.append(list[i]!, list[i + 1]!)
    self[kHeaders] = h
  }
  return h
}

function abortOf (self: LazyRequest): AbortController {
  let a = self[kAbort]
  if (a === undefined) {
    a = self[kAbort] = new AbortController()
    const why = self[kAborted]
    if (why !== undefined) a.abort(abortError(why))
  }
  return a
}

function bodyStreamOf (self: LazyRequest): ReadableStream<Uint8Array> | null {
  if (self[kBody] !== undefined) return self[kBody]
  const src = self[kState].body
  if (src === null) return (self[kBody] = null)
  if (src.taken) throw bodyUnusable()
  src.taken = true
  return (self[kBody] = src.stream())
}

function realOf (self: LazyRequest): Request {
  let r = self[kReal]
  if (r === undefined) {
    const s = self[kState]
    const body = bodyStreamOf(self)
    const init: RequestInit & { duplex?: 'half' } = { method: s.method, headers: headersOf(self), signal: abortOf(self).signal }
    if (body !== null && s.method !== 'GET' && s.method !== 'HEAD') {
      init.body = body
      init.duplex = 'half'
    }
    r = self[kReal] = new GlobalRequest(s.url, init)
  }
  return r
}

async function readFast (self: LazyRequest): Promise<Uint8Array> {
  if (self[kReal] !== undefined || self[kBody] !== undefined) {
    return new Uint8Array(await realOf(self).arrayBuffer())
  }
  const src = self[kState].body
  if (src === null) return new Uint8Array(0)
  if (src.taken) throw bodyUnusable()
  src.taken = true
  return await src.readAll()
}

function toArrayBuffer (u: Uint8Array): ArrayBuffer {
  if (u.byteOffset === 0 && u.byteLength === u.buffer.byteLength && u.buffer instanceof ArrayBuffer) return u.buffer
  return Uint8Array.prototype.slice.call(u).buffer as ArrayBuffer
}

const requestPrototype = {
  get method (): string { return (this as unknown as LazyRequest)[kState].method },
  get url (): string { return (this as unknown as LazyRequest)[kState].url },
  get headers (): Headers { return headersOf(this as unknown as LazyRequest) },
  get signal (): AbortSignal { return abortOf(this as unknown as LazyRequest).signal },
  get body (): ReadableStream<Uint8Array> | null {
    const self = this as unknown as LazyRequest
    return self[kReal] !== undefined ? self[kReal].body : bodyStreamOf(self)
  },
  get bodyUsed (): boolean {
    const self = this as unknown as LazyRequest
    if (self[kReal] !== undefined) return self[kReal].bodyUsed
    return self[kState].body?.taken === true && self[kBody] === undefined
  },
  text (): Promise<string> {
    return readFast(this as unknown as LazyRequest).then((b) => textDecoder.decode(b))
  },
  json (): Promise<unknown> {
    return readFast(this as unknown as LazyRequest).then((b) => JSON.parse(textDecoder.decode(b)))
  },
  arrayBuffer (): Promise<ArrayBuffer> {
    return readFast(this as unknown as LazyRequest).then(toArrayBuffer)
  },
  bytes (): Promise<Uint8Array> {
    return readFast(this as unknown as LazyRequest)
  }
}

for (const k of ['cache', 'credentials', 'destination', 'duplex', 'integrity', 'mode', 'redirect', 'referrer', 'referrerPolicy', 'keepalive']) {
  Object.defineProperty(requestPrototype, k, {
    get () { return (realOf(this as LazyRequest) as unknown as Record<string, unknown>)[k] }
  })
}
for (const k of ['clone', 'formData', 'blob']) {
  Object.defineProperty(requestPrototype, k, {
    value: function (this: LazyRequest) {
      const real = realOf(this) as unknown as Record<string, () => unknown>
      return real[k]!.call(real)
    }
  })
}
Object.defineProperty(requestPrototype, Symbol.for('nodejs.util.inspect.custom'), {
  value: function (this: LazyRequest) { return `Request (ferry, lazy) ${this[kState].method} ${this[kState].url}` }
})
Object.setPrototypeOf(requestPrototype, GlobalRequest.prototype)

export function createRequest (state: RequestState): Request {
  const req = Object.create(requestPrototype) as LazyRequest
  req[kState] = state
  return req as unknown as Request
}

/**
 * Abort request.signal (client went away or the request timed out). `why` becomes an
 * AbortError DOMException, made only if the handler ever looks at the signal (a signal
 * nobody read is made already aborted on first read): creating the exception and an
 * AbortController costs more than a whole hello-world request, and a storm of cancels is
 * when the thread needs its time.
 */
export function abortRequest (req: Request, why: string): void {
  const self = req as unknown as LazyRequest
  const a = self[kAbort]
  if (a !== undefined) a.abort(abortError(why))
  else self[kAborted] = why
}

/** An AbortError without a stack trace (it would point into ferry, not the handler). */
export function abortError (why: string): DOMException {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new DOMException(why, 'AbortError')
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** The URL a handler sees: scheme://authority/path, percent-encoded where the path is not ASCII. */
export function requestUrl (scheme: string, authority: string, path: string, headers: string[]): string {
  let host = authority
  if (host === '') {
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] === 'host') {
        host = headers[i + 1]!
        break
      }
    }
    if (host === '') host = 'localhost'
  }
  const url = `${scheme === '' ? 'http' : scheme}://${host}${path.startsWith('/') ? path : `/${path}`}`
  if (/[^\x21-\x7e]/.test(url)) {
    try {
      return new URL(url).href
    } catch {
      return `http://localhost${encodeURI(path)}`
    }
  }
  return url
}
