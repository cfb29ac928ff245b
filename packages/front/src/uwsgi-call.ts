/**
 * One request to a uwsgi node: a connection of its own (uwsgi has no reuse, as nginx's
 * uwsgi_pass), the packet from @ferry/protocol's encodeUwsgiRequest (byte for byte what
 * nginx sends), the body after it, and the node's HTTP/1.x response parsed back.
 *
 * uwsgi needs CONTENT_LENGTH up front: a chunked upload is buffered first (bounded by
 * --max-body, or 64 MiB), as nginx does for uwsgi_pass.
 * Backpressure: request body → socket.write (the exchange pauses the client on false and
 * resumes on 'drain'); response body → the client (a false from res.write pauses the socket).
 */
import type { Socket } from 'node:net'
import { encodeUwsgiRequest, type FerryError, Http1ResponseParser, ResetCode } from '@ferry/protocol'
import { writeBody } from './client-side.js'
import { frontError } from './errors.js'
import type { Exchange, UpstreamCall } from './exchange.js'
import type { UpstreamNode } from './node.js'
import { connectError } from './upstream-tls.js'

const BUFFER_CAP = 64 * 1024 * 1024

export class UwsgiCall implements UpstreamCall {
  #ex: Exchange
  #node: UpstreamNode
  #socket: Socket | null = null
  #parser: Http1ResponseParser
  #buffered: Buffer[] | null = null
  #bufferedBytes = 0
  #connected = false
  #responded = false
  #done = false

  constructor (ex: Exchange, node: UpstreamNode) {
    this.#ex = ex
    this.#node = node
    this.#parser = new Http1ResponseParser({
      onHead: (head) => {
        this.#responded = true
        ex.respond(head, head.bodyLength === 0)
      },
      onBody: (chunk) => {
        if (!writeBody(ex, chunk)) this.#socket?.pause()
      },
      onEnd: () => {
        this.#done = true
        this.#socket?.destroy()
        if (this.#responded) ex.end()
      }
    }, { method: ex.head.method })
    if (ex.head.bodyLength === -1) this.#buffered = []
    else this.#send()
  }

  #send (): void {
    const head = this.#ex.head
    let packet: Buffer
    try {
      packet = encodeUwsgiRequest(head, { serverName: this.#ex.host.uwsgiServerName })
    } catch (err) {
      const e = err as FerryError
      this.#done = true
      this.#ex.fail(e.code === 'FERRY_ERR_UWSGI_ENCODE_TOO_LARGE'
        ? frontError('FERRY_ERR_FRONT_HEAD_TOO_LARGE', e.message, { cause: e })
        : e)
      return
    }
    const node = this.#node
    const { socket, handshake } = node.openSocket()
    this.#socket = socket
    socket.on(handshake === null ? 'connect' : 'secureConnect', () => { this.#connected = true })
    socket.on('data', (chunk: Buffer) => this.#parse(chunk))
    socket.on('end', () => this.#parse(null))
    socket.on('drain', () => this.#ex.req.resume())
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.#done) return
      if (!this.#connected || (node.tls && err.code?.startsWith('ERR_SSL_') === true)) {
        // Nothing reached the node (no connection, or TLS refused it before reading a byte):
        // as safe to retry as a refused stream.
        const e = connectError(node.name, err, node.tls, handshake, { resetCode: ResetCode.REFUSED_STREAM })
        node.down = true
        node.tlsFailed(e)
        node.fail(Date.now(), e.message)
        this.#fail(e)
      } else {
        this.#fail(frontError('FERRY_ERR_FRONT_UPSTREAM_RESET', `${this.#node.name}: ${err.code ?? err.message}`, { cause: err }))
      }
    })
    socket.on('close', () => {
      if (!this.#done) this.#parse(null)
    })
    socket.cork()
    socket.write(packet)
    if (this.#buffered !== null) {
      for (const b of this.#buffered) socket.write(b)
      this.#buffered = null
    }
    socket.uncork()
  }

  /** Feed the response parser (null = the node closed); its errors fail the request. */
  #parse (chunk: Buffer | null): void {
    if (this.#done) return
    try {
      if (chunk === null) this.#parser.end()
      else this.#parser.push(chunk)
    } catch (err) {
      const e = err as FerryError
      this.#fail(e.code === 'FERRY_ERR_HTTP1_TRUNCATED'
        ? frontError('FERRY_ERR_FRONT_UPSTREAM_RESET', `${this.#node.name}: ${e.message}`, { cause: e })
        : frontError('FERRY_ERR_FRONT_UPSTREAM_PROTOCOL', `${this.#node.name}: ${e.message}`, { cause: e }))
    }
  }

  #fail (err: FerryError): void {
    if (this.#done) return
    this.#done = true
    this.#socket?.destroy()
    this.#ex.upstreamError(err)
  }

  write (chunk: Buffer): boolean {
    if (this.#buffered !== null) {
      this.#bufferedBytes += chunk.length
      const cap = this.#ex.host.maxBody > 0 ? this.#ex.host.maxBody : BUFFER_CAP
      if (this.#bufferedBytes > cap) {
        this.#done = true
        this.#ex.fail(frontError('FERRY_ERR_FRONT_BODY_TOO_LARGE', `chunked body over ${cap} bytes for a uwsgi node (buffered: uwsgi needs CONTENT_LENGTH)`))
        return true
      }
      this.#buffered.push(chunk)
      return true
    }
    if (this.#socket === null) return true
    return this.#socket.write(chunk)
  }

  endBody (): void {
    if (this.#buffered === null || this.#done) return
    const head = this.#ex.head
    head.bodyLength = this.#bufferedBytes
    head.headers.push('content-length', String(this.#bufferedBytes))
    this.#send()
  }

  resume (): void {
    this.#socket?.resume()
  }

  destroy (): void {
    this.#done = true
    this.#socket?.destroy()
  }
}
