/**
 * Built-in `compress`: gzip or brotli response bodies through node:zlib streams, chosen by
 * the request's Accept-Encoding with its q-values (RFC 9110 §12.5.3): the coding with the
 * highest q wins (br before gzip on a tie), `*` stands for codings not named, q=0 refuses.
 * Skipped: HEAD, 1xx/204/304, a response with Content-Encoding already, `Cache-Control:
 * no-transform`, types that are compressed already (images but SVG, audio, video, zip/gzip/
 * 7z/rar/bz2, woff/woff2, PDF…), text/event-stream (a stream of small events must not wait in
 * a compressor's buffer), and bodies smaller than `threshold` (1 KiB) when their size is known.
 * `Vary: Accept-Encoding` is set on every response of a compressible type, compressed or not.
 * Bodies stream through the compressor chunk by chunk: never buffered whole.
 */
import { Readable } from 'node:stream'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import { constants, createBrotliCompress, createGzip } from 'node:zlib'
import { appError } from './errors.js'
import type { Middleware } from './middleware.js'
import { mutable } from './mw-builtin.js'
import { knownBodyLength } from './response.js'

const SUPPORTED = ['br', 'gzip'] as const
type Coding = typeof SUPPORTED[number]

/** Parse Accept-Encoding and pick a coding among `offered`, or null for identity. */
export function negotiate (header: string | null, offered: readonly Coding[]): Coding | null {
  if (header === null) return null
  const q = new Map<string, number>()
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';')
    const coding = name!.trim().toLowerCase()
    if (coding === '') continue
    let weight = 1
    for (const p of params) {
      const [k, v] = p.split('=')
      if (k!.trim().toLowerCase() !== 'q') continue
      // a malformed q-value refuses the coding rather than accepting it at full weight
      weight = /^\s*(0(\.\d{0,3})?|1(\.0{0,3})?)\s*$/.test(v ?? '') ? Number(v) : 0
    }
    if (!Number.isFinite(weight)) weight = 0
    q.set(coding === 'x-gzip' ? 'gzip' : coding, Math.min(1, Math.max(0, weight)))
  }
  const star = q.get('*')
  let best: Coding | null = null
  let bestQ = 0
  for (const c of offered) {
    const w = q.get(c) ?? star ?? 0
    if (w > bestQ) {
      best = c
      bestQ = w
    }
  }
  return best
}

const COMPRESSED = /^(image\/(?!svg)|audio\/|video\/|font\/woff2?|application\/(zip|gzip|x-gzip|x-bzip2|x-7z-compressed|x-rar-compressed|vnd\.rar|zstd|x-xz|pdf|octet-stream|wasm)|text\/event-stream)/i

export function compressible (contentType: string | null): boolean {
  return contentType !== null && !COMPRESSED.test(contentType.trim())
}

export function compress (options: Record<string, unknown>): Middleware {
  for (const k of Object.keys(options)) {
    if (k !== 'threshold' && k !== 'encodings' && k !== 'level') throw appError('FERRY_ERR_APP_OPTIONS', `middleware compress: unknown option ${JSON.stringify(k)} (known: threshold, encodings, level)`)
  }
  const threshold = options.threshold === undefined ? 1024 : Number(options.threshold)
  if (!Number.isSafeInteger(threshold) || threshold < 0) throw appError('FERRY_ERR_APP_OPTIONS', 'middleware compress: threshold must be bytes >= 0')
  const raw = options.encodings === undefined ? [...SUPPORTED] : Array.isArray(options.encodings) ? options.encodings : String(options.encodings).split(',').map((s) => s.trim())
  for (const e of raw) if (!(SUPPORTED as readonly string[]).includes(e as string)) throw appError('FERRY_ERR_APP_OPTIONS', `middleware compress: encodings are br and gzip, got ${JSON.stringify(e)}`)
  const offered = raw as Coding[]
  const level = options.level === undefined ? null : Number(options.level)
  if (level !== null && (!Number.isInteger(level) || level < 1 || level > 11)) throw appError('FERRY_ERR_APP_OPTIONS', 'middleware compress: level must be 1..9 (gzip) or 1..11 (br)')
  return async (request, _context, next) => {
    const res = await next(request)
    const s = res.status
    if (request.method === 'HEAD' || s < 200 || s === 204 || s === 304 || res.body === null) return res
    const h = res.headers
    if (h.has('content-encoding') || !compressible(h.get('content-type'))) return res
    if (/(^|,)\s*no-transform\s*(,|$)/i.test(h.get('cache-control') ?? '')) return res
    const out = mutable(res)
    out.headers.append('vary', 'Accept-Encoding')
    const len = knownBodyLength(res)
    if (len >= 0 && len < threshold) return out
    const coding = negotiate(request.headers.get('accept-encoding'), offered)
    if (coding === null) return out
    const z = coding === 'br'
      ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: level ?? 4, ...(len >= 0 ? { [constants.BROTLI_PARAM_SIZE_HINT]: len } : {}) } })
      : createGzip({ level: level === null ? 6 : Math.min(9, level) })
    const src = Readable.fromWeb(out.body as unknown as NodeReadableStream<Uint8Array>)
    src.on('error', (err) => z.destroy(err))
    z.on('close', () => src.destroy())
    src.pipe(z)
    const body = Readable.toWeb(z) as unknown as ReadableStream<Uint8Array>
    const headers = new Headers(out.headers)
    headers.delete('content-length')
    headers.set('content-encoding', coding)
    const etag = headers.get('etag')
    if (etag !== null && !etag.startsWith('W/')) headers.set('etag', `W/${etag}`)
    return new Response(body, { status: out.status, statusText: out.statusText, headers })
  }
}
