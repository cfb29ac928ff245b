/**
 * One multiplexed stream of a native Session: a request and its response.
 *
 * Callbacks are plain properties (no EventEmitter per stream: streams are per request and
 * the front's budget per request is a few microseconds). The owning Session drives the
 * fields marked @internal; users call respond/write/end/reset/consume.
 */
import type { FerryError } from './errors.js'
import type { RequestHead, ResponseHead } from './types.js'

/** The part of Session a Stream calls back into (implemented by Session). */
export interface StreamOwner {
  /** @internal */ sendHeaders (stream: Stream, payload: Uint8Array, endStream: boolean): void
  /** @internal */ sendData (stream: Stream): void
  /** @internal */ sendReset (stream: Stream, code: number, message: string): void
  /** @internal */ returnCredit (stream: Stream, n: number): void
  /** @internal */ encodeResponse (head: ResponseHead): Uint8Array
  /** @internal */ wantDrain (stream: Stream): void
  readonly socketBlocked: boolean
}

export class Stream {
  readonly id: number
  readonly session: StreamOwner
  /** Server side: the request head. */
  head: RequestHead | null = null
  /** Client side: the response head, once received. */
  response: ResponseHead | null = null

  onResponse: ((head: ResponseHead, endStream: boolean) => void) | null = null
  onData: ((chunk: Buffer) => void) | null = null
  onEnd: (() => void) | null = null
  onError: ((err: FerryError) => void) | null = null
  onDrain: (() => void) | null = null

  /** When true, receive credit goes back only through consume(n). */
  manualConsume = false
  /** Free slot for the owner (avoids a closure per stream). */
  userData: unknown = undefined

  /** @internal bytes of DATA received */ bytesReceived = 0
  /** @internal bytes whose credit was returned */ bytesConsumed = 0
  /** @internal credit consumed but not yet announced in a WINDOW_UPDATE */ unacked = 0
  /** @internal receive window left */ recvWindow: number
  /** @internal send window left */ sendWindow: number
  /** @internal DATA waiting for credit or socket drain (views, never copies) */ pending: Uint8Array[] = []
  /** @internal */ pendingBytes = 0
  /** @internal end() was called; END_STREAM goes with the last pending byte */ endPending = false
  /** @internal write() returned false: onDrain is owed */ wantDrain = false
  /** @internal declared body length of what we receive (-1 unknown) */ expectedLength = -1
  /** @internal we have sent HEADERS */ headersSent = false

  localEnded = false
  remoteEnded = false
  closed = false

  constructor (id: number, owner: StreamOwner, recvWindow: number, sendWindow: number) {
    this.id = id
    this.session = owner
    this.recvWindow = recvWindow
    this.sendWindow = sendWindow
  }

  /** Server side: send the response head. `endStream` when there is no body. */
  respond (head: ResponseHead, endStream: boolean): void {
    if (this.closed) return
    if (this.headersSent) throw new Error('respond() called twice')
    this.headersSent = true
    const payload = this.session.encodeResponse(head)
    if (endStream) this.localEnded = true
    this.session.sendHeaders(this, payload, endStream)
  }

  /**
   * Queue body bytes. Returns false when the caller should stop writing until onDrain (no
   * flow-control credit left, or the socket is backed up). Bytes are never copied.
   */
  write (chunk: Uint8Array): boolean {
    if (this.closed || this.localEnded || this.endPending) return false
    if (chunk.length > 0) {
      this.pending.push(chunk)
      this.pendingBytes += chunk.length
      this.session.sendData(this)
    }
    if (this.pendingBytes > 0 || this.session.socketBlocked) {
      this.wantDrain = true
      this.session.wantDrain(this)
      return false
    }
    return true
  }

  /** End our half of the stream (END_STREAM), optionally with a last chunk. */
  end (chunk?: Uint8Array): void {
    if (this.closed || this.localEnded || this.endPending) return
    if (chunk !== undefined && chunk.length > 0) {
      this.pending.push(chunk)
      this.pendingBytes += chunk.length
    }
    this.endPending = true
    this.session.sendData(this)
  }

  /** Cancel this stream (RESET); no callbacks fire after this. */
  reset (code: number, message = ''): void {
    if (this.closed) return
    this.session.sendReset(this, code, message)
  }

  /** Return receive credit for n bytes (only needed with manualConsume). */
  consume (n: number): void {
    if (n <= 0) return
    const outstanding = this.bytesReceived - this.bytesConsumed
    if (n > outstanding) n = outstanding
    if (n === 0) return
    this.bytesConsumed += n
    this.session.returnCredit(this, n)
  }
}

