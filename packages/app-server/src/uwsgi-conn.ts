/**
 * A uwsgi connection (nginx `uwsgi_pass`, modifier1 0): one request per connection. The packet
 * is decoded with the protocol's UwsgiDecoder, dispatched to the same pool as native requests,
 * answered with an HTTP/1.1 response (status line, headers, content-length when known, else
 * the body runs until the connection closes), then the connection is shut down with FIN.
 * Backpressure: the socket is paused while more than a window of request body waits for the
 * handler; response chunks return credit to the worker only once the socket took them.
 * The response is held back until the whole request body has been read: nginx stops
 * sending the request body once the response head arrives (its upstream write handler
 * becomes a no-op), so a handler that answers while still reading (an echo) would wait
 * forever for the rest. While the response is held, the request body is read on without
 * pausing (at most what nginx buffered: client_max_body_size); the held response itself is
 * bounded by the worker's response credit (256 KiB).
 */
import type { Socket } from 'node:net'
import { encodeHttp1ResponseHead, type FerryError, isFerryError, type RequestHead, UwsgiDecoder } from '@ferry/protocol'
import { appError } from './errors.js'
import type { Dispatcher, Mount } from './mounts.js'
import type { ConnectionHost } from './native.js'
import type { Exchange } from './pool.js'
import { errorResponse, ensureRequestId } from './respond.js'

/** A response body up to this size is copied into its head's buffer (one write instead of two). */
const INLINE_BODY = 16 * 1024

/** Request-body bytes read from the socket but not yet taken by the handler, before pausing. */
const BODY_WINDOW = 256 * 1024

function contentLength (headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-length') return Number(headers[i + 1])
  return -1
}

class UwsgiExchange implements Exchange {
  head!: RequestHead
  call: object | null = null
  pool: Dispatcher | null = null
  mount: Mount | null = null
  #socket: Socket
  #host: ConnectionHost
  #decoder: UwsgiDecoder
  #outstanding = 0
  #paused = false
  #owed = 0
  #headSent = false
  #done = false
  #status = 0
  #start = performance.now()
  #bodyComplete = false
  /** A response that arrived before the request body was complete (see the file comment). */
  #held: { head: [number, string[], number, Uint8Array | null, boolean] | null, chunks: Uint8Array[], end: boolean } | null = null

  constructor (socket: Socket, host: ConnectionHost) {
    this.#socket = socket
    this.#host = host
    this.#decoder = new UwsgiDecoder({
      onHead: (head) => this.#onRequest(head),
      onBody: (chunk) => this.#onBody(chunk),
      onEnd: () => {
        this.#bodyComplete = true
        if (this.call !== null) this.pool!.bodyEnd(this.call)
        this.#release()
      }
    })
    socket.on('data', (chunk: Buffer) => this.push(chunk))
    socket.on('end', () => this.#onPeerEnd())
    socket.on('close', () => { if (this.call !== null && !this.#done) this.pool!.cancel(this.call) })
    socket.on('drain', () => this.#onDrain())
  }

  push (chunk: Buffer): void {
    try {
      this.#decoder.push(chunk)
    } catch (err) {
      this.#protocolFailure(err)
    }
  }

  #onPeerEnd (): void {
    try {
      this.#decoder.end()
    } catch (err) {
      this.#protocolFailure(err)
      return
    }
    // already ended after the response: a second end() would build an ERR_STREAM_ALREADY_FINISHED error (6% of the uwsgi path)
    if (this.#done && !this.#socket.writableEnded) this.#socket.end()
  }

  #protocolFailure (err: unknown): void {
    const e = err as FerryError
    this.#host.log.warn({ code: e.code, err: isFerryError(err) ? undefined : err, remote: this.#socket.remoteAddress }, `uwsgi: ${e.message}`)
    if (this.call !== null) {
      this.pool!.cancel(this.call)
      this.call = null
    }
    if (!this.#headSent && !this.#socket.destroyed) {
      const r = errorResponse(e, this.head ?? { method: 'GET', requestId: '' } as RequestHead)
      this.#socket.write(encodeHttp1ResponseHead({ status: r.status, headers: r.headers, bodyLength: r.body.byteLength }, r.body))
    }
    this.#done = true
    this.#socket.end()
  }

  #onRequest (head: RequestHead): void {
    ensureRequestId(head)
    this.head = head
    if (head.remoteAddress === '' && this.#socket.remoteAddress !== undefined) head.remoteAddress = this.#socket.remoteAddress
    const mount = this.#host.route(head.path)
    if (mount === null) {
      this.onFail(appError('FERRY_ERR_APP_NO_MOUNT', head.path))
      return
    }
    this.mount = mount
    const pool = mount.dispatcher
    this.pool = pool
    const r = pool.submit(this)
    if ('code' in r) {
      this.onFail(r)
      return
    }
    this.call = r
  }

  #onBody (chunk: Buffer): void {
    if (this.call === null || this.#done) return
    this.pool!.body(this.call, chunk)
    this.#outstanding += chunk.byteLength
    this.#flow()
  }

  /** Pause the socket while the handler is behind on the body, unless our response is stuck. */
  #flow (): void {
    const pause = this.#outstanding > BODY_WINDOW && this.#owed === 0 && !this.#done && this.#held === null
    if (pause && !this.#paused) {
      this.#paused = true
      this.#socket.pause()
    } else if (!pause && this.#paused && (this.#outstanding <= BODY_WINDOW / 2 || this.#owed > 0 || this.#done || this.#held !== null)) {
      this.#paused = false
      this.#socket.resume()
    }
  }

  onConsumed (n: number): void {
    this.#outstanding -= n
    this.#flow()
  }

  onHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void {
    if (!this.#bodyComplete) {
      this.#held = { head: [status, headers, bodyLength, body, end], chunks: [], end }
      this.#flow()
      return
    }
    this.#writeHead(status, headers, bodyLength, body, end)
  }

  /** The request body is complete: send what the handler answered meanwhile. */
  #release (): void {
    const held = this.#held
    if (held === null || held.head === null) return
    this.#held = null
    const [status, headers, bodyLength, body, end] = held.head
    this.#writeHead(status, headers, bodyLength, body, end)
    if (end) return
    for (const c of held.chunks) this.#writeChunk(c)
    if (held.end) this.#finish()
  }

  #writeHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void {
    this.#status = status
    if (this.#socket.destroyed) return
    let length = end ? (body === null ? 0 : body.byteLength) : bodyLength
    if (this.head.method === 'HEAD') {
      const declared = contentLength(headers)
      if (declared >= 0) length = declared
    }
    this.#headSent = true
    // a small body goes out in the head's buffer, one write then the FIN: with --threads 0 behind
    // nginx, 19.0k vs 16.1k req/s against a corked head + body pair (6 alternating runs)
    const inline = body !== null && body.byteLength > 0 && body.byteLength <= INLINE_BODY ? body : null
    let encoded: Buffer
    try {
      encoded = encodeHttp1ResponseHead({ status, headers, bodyLength: length }, inline)
    } catch (err) {
      // a header that cannot be written on HTTP/1 (CR/LF in a value…): a 500 rather than a split response
      this.#headSent = false
      if (this.call !== null && !end) this.pool!.cancel(this.call)
      this.onFail(err as FerryError)
      return
    }
    const s = this.#socket
    if (inline !== null || body === null || body.byteLength === 0) {
      if (end) this.#finish(encoded)
      else s.write(encoded)
      return
    }
    s.cork()
    s.write(encoded)
    s.write(body)
    s.uncork()
    if (end) this.#finish()
  }

  onChunk (chunk: Uint8Array): void {
    if (this.#held !== null) {
      this.#held.chunks.push(chunk)
      return
    }
    this.#writeChunk(chunk)
  }

  #writeChunk (chunk: Uint8Array): void {
    if (this.#socket.destroyed) return
    if (this.#socket.write(chunk)) this.pool!.credit(this.call!, chunk.byteLength)
    else {
      this.#owed += chunk.byteLength
      this.#flow()
    }
  }

  #onDrain (): void {
    if (this.#owed > 0 && this.call !== null) {
      const n = this.#owed
      this.#owed = 0
      this.pool!.credit(this.call, n)
    }
    this.#flow()
  }

  onEnd (): void {
    if (this.#held !== null) {
      this.#held.end = true
      return
    }
    this.#finish()
  }

  onFail (err: FerryError): void {
    this.#held = null
    this.#status = err.statusCode
    if (!this.#headSent && !this.#socket.destroyed) {
      const r = errorResponse(err, this.head)
      this.#headSent = true
      this.#finish(encodeHttp1ResponseHead({ status: r.status, headers: r.headers, bodyLength: r.body.byteLength }, r.body))
      return
    }
    // Mid-body: the only way to tell an HTTP/1 peer the body is incomplete is to cut it short.
    this.#host.onRequestDone(err.statusCode, performance.now() - this.#start, this.mount)
    this.#done = true
    this.#socket.destroy()
  }

  /** The response is complete (`last`: its final bytes, written with the FIN). */
  #finish (last?: Buffer): void {
    if (this.#done) return
    this.#done = true
    this.#host.onRequestDone(this.#status, performance.now() - this.#start, this.mount)
    // Any request body still arriving is read and dropped; our side ends with FIN, never RST.
    this.#flow()
    if (last === undefined) this.#socket.end()
    else this.#socket.end(last)
  }
}

export function serveUwsgi (socket: Socket, first: Buffer, host: ConnectionHost, sockets: Set<Socket>): void {
  sockets.add(socket)
  socket.on('close', () => sockets.delete(socket))
  const ex = new UwsgiExchange(socket, host)
  ex.push(first)
}
