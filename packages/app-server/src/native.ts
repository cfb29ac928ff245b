/**
 * A native ferry connection on the app-server: a server-role Session whose streams become
 * pool calls. Request bodies use manualConsume: credit goes back to the front only when the
 * worker has taken the bytes. Response chunks are written with the stream's backpressure:
 * the worker gets CREDIT back only once its bytes left for the socket.
 */
import type { Socket } from 'node:net'
import { type FerryError, type RequestHead, ResetCode, Session, type Stream } from '@ferry/protocol'
import type { Logger } from 'pino'
import { appError } from './errors.js'
import type { Dispatcher, Mount } from './mounts.js'
import type { Exchange } from './pool.js'
import { errorResponse, ensureRequestId } from './respond.js'

export interface ConnectionHost {
  /** The mount serving a path (its dispatcher changes on reload); null → 404. */
  route (path: string): Mount | null
  readonly log: Logger
  /** Shared secret the client's HELLO must prove (null: none). */
  readonly auth: string | null
  onRequestDone (status: number, ms: number, mount: Mount | null): void
  /** Most open WebSockets on the node, and how many are open or being set up now. */
  readonly maxWebSockets: number
  webSockets: number
}

class NativeExchange implements Exchange {
  readonly head: RequestHead
  readonly stream: Stream
  call: object | null = null
  readonly pool: Dispatcher | null
  readonly mount: Mount | null
  #host: ConnectionHost
  #owed = 0
  #resetWhenFlushed = false
  #status = 0
  #start = performance.now()
  /** A WebSocket upgrade holding one of the node's --max-websockets places. */
  upgrade = false

  constructor (stream: Stream, mount: Mount | null, host: ConnectionHost) {
    this.stream = stream
    this.head = stream.head!
    ensureRequestId(this.head)
    this.mount = mount
    this.pool = mount === null ? null : mount.dispatcher
    this.#host = host
  }

  /** Give the WebSocket place back (the upgrade was refused, or the socket is over). */
  release (): void {
    if (!this.upgrade) return
    this.upgrade = false
    this.#host.webSockets--
  }

  onHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void {
    const s = this.stream
    this.#status = status
    if (status !== 101) this.release()
    if (s.closed) return
    if (end) {
      if (body !== null && body.byteLength > 0) {
        s.respond({ status, headers, bodyLength: body.byteLength }, false)
        s.end(body)
      } else {
        s.respond({ status, headers, bodyLength: 0 }, true)
      }
      this.#finished()
      return
    }
    s.respond({ status, headers, bodyLength }, false)
  }

  onChunk (chunk: Uint8Array): void {
    const s = this.stream
    if (s.closed) return
    if (s.write(chunk)) this.pool!.credit(this.call!, chunk.byteLength)
    else this.#owed += chunk.byteLength
  }

  onDrain (): void {
    if (this.#owed > 0 && this.call !== null) {
      const n = this.#owed
      this.#owed = 0
      this.pool!.credit(this.call, n)
    }
    if (this.#resetWhenFlushed) this.#resetUnread()
  }

  onEnd (): void {
    this.release()
    this.stream.end()
    this.#finished()
  }

  onFail (err: FerryError): void {
    this.release()
    const s = this.stream
    this.#status = err.statusCode
    if (s.closed) {
      this.#host.onRequestDone(err.statusCode, performance.now() - this.#start, this.mount)
      return
    }
    if (!s.headersSent) {
      const r = errorResponse(err, this.head)
      s.respond({ status: r.status, headers: r.headers, bodyLength: r.body.byteLength }, false)
      s.end(r.body)
      this.#finished()
    } else {
      s.reset(err.code === 'FERRY_ERR_APP_TIMEOUT' ? ResetCode.TIMEOUT : ResetCode.INTERNAL_ERROR, err.message)
      this.#host.onRequestDone(err.statusCode, performance.now() - this.#start, this.mount)
    }
  }

  onConsumed (n: number): void {
    this.stream.consume(n)
  }

  /** Response over: an unread request body must not hold the stream's credit. */
  #finished (): void {
    this.#host.onRequestDone(this.#status, performance.now() - this.#start, this.mount)
    if (this.stream.remoteEnded) return
    if (this.stream.localEnded) this.#resetUnread()
    else this.#resetWhenFlushed = true
  }

  #resetUnread (): void {
    this.#resetWhenFlushed = false
    const s = this.stream
    if (!s.closed && s.localEnded && !s.remoteEnded) s.reset(ResetCode.NO_ERROR, 'response complete; request body not read')
  }
}

function onData (this: Stream, chunk: Buffer): void {
  const ex = this.userData as NativeExchange
  if (ex.call !== null) ex.pool!.body(ex.call, chunk)
}

function onEnd (this: Stream): void {
  const ex = this.userData as NativeExchange
  if (ex.call !== null) ex.pool!.bodyEnd(ex.call)
}

function onError (this: Stream): void {
  const ex = this.userData as NativeExchange
  ex.release()
  if (ex.call !== null) ex.pool!.cancel(ex.call)
}

/** `upgrade: websocket` among the head's headers (the front keeps it for upgrades only). */
function isWebSocketUpgrade (headers: string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'upgrade') return headers[i + 1]!.toLowerCase() === 'websocket'
  }
  return false
}

function onDrainCb (this: Stream): void {
  (this.userData as NativeExchange).onDrain()
}

const FEATURES = ['websocket']

/** `endpoints`: the node's --direct thread addresses, announced in HELLO (none: undefined). */
export function serveNative (socket: Socket, first: Buffer, host: ConnectionHost, sessions: Set<Session>, goingAway: boolean, endpoints?: readonly string[]): Session {
  const session = new Session(socket, { role: 'server', initialData: first, agent: 'ferry-app', auth: host.auth ?? undefined, features: FEATURES, endpoints })
  // listeners allow half-open sockets (uwsgi peers may FIN after the request); native peers
  // that FIN get our FIN back (the session fails any stream still open)
  socket.on('end', () => { if (!socket.writableEnded) socket.end() })
  sessions.add(session)
  const log = host.log
  session.on('stream', (stream: Stream) => {
    const mount = host.route(stream.head!.path)
    const ex = new NativeExchange(stream, mount, host)
    stream.userData = ex
    stream.manualConsume = true
    stream.onData = onData
    stream.onEnd = onEnd
    stream.onError = onError
    stream.onDrain = onDrainCb
    const pool = ex.pool
    if (pool === null) {
      ex.onFail(appError('FERRY_ERR_APP_NO_MOUNT', stream.head!.path))
      return
    }
    // the front sends upgrades as a GET with a streamed body: only those are scanned
    if (ex.head.bodyLength === -1 && ex.head.method === 'GET' && isWebSocketUpgrade(ex.head.headers)) {
      if (host.webSockets >= host.maxWebSockets) {
        log.warn({ reqId: ex.head.requestId, code: 'FERRY_ERR_APP_WS_LIMIT', open: host.webSockets }, 'WebSocket refused: --max-websockets reached')
        ex.onFail(appError('FERRY_ERR_APP_WS_LIMIT', `${host.webSockets} open`))
        return
      }
      host.webSockets++
      ex.upgrade = true
    }
    const r = pool.submit(ex)
    if ('code' in r) {
      ex.onFail(r)
      return
    }
    ex.call = r
    if (stream.remoteEnded && ex.head.bodyLength !== 0) pool.bodyEnd(r)
  })
  session.on('error', (err: FerryError) => log.warn({ err, code: err.code }, 'native connection error'))
  session.on('close', () => sessions.delete(session))
  if (goingAway) session.goaway()
  return session
}
