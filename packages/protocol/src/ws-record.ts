/**
 * WebSocket messages on a native stream. A request head carrying `upgrade: websocket`,
 * answered with status 101, turns its stream into a WebSocket: from then on the DATA of
 * both directions is a sequence of records, each one whole WebSocket message or control
 * frame with its boundary kept:
 *
 *   opcode  u8      the RFC 6455 opcode: 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong
 *   length  u32 BE  payload bytes
 *   payload         text: UTF-8; close: empty, or u16 BE code + UTF-8 reason (as RFC 6455)
 *
 * Records ride the stream's flow control like any body bytes, so a slow reader on either
 * side holds back the writer. Fragmented client messages are joined by the front; a record
 * is always a whole message. END_STREAM follows the close record of the side that closes.
 */
import { protocolError } from './errors.js'

export const WsOp = {
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa
} as const

export const WS_RECORD_HEADER = 5

/** Default largest WebSocket message, bytes (front and app-server --ws-max-message). */
export const DEFAULT_WS_MAX_MESSAGE = 16 * 1024 * 1024

/** Payloads below this go out copied behind their header, as one buffer (one DATA frame). */
const COPY_BELOW = 4096

/** Close codes ferry uses (RFC 6455 §7.4.1). */
export const WsClose = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013
} as const

/** The 5-byte header of a record (the payload is written after it, uncopied). */
export function wsRecordHeader (opcode: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(WS_RECORD_HEADER)
  h[0] = opcode
  h.writeUInt32BE(length, 1)
  return h
}

/** A whole record in one buffer (for small payloads and control records). */
export function encodeWsRecord (opcode: number, payload: Uint8Array | string = ''): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  const out = Buffer.allocUnsafe(WS_RECORD_HEADER + body.byteLength)
  out[0] = opcode
  out.writeUInt32BE(body.byteLength, 1)
  out.set(body, WS_RECORD_HEADER)
  return out
}

/**
 * The buffers that carry one record: the whole record in one buffer for a small payload, or
 * its header and then the payload itself, uncopied.
 */
export function wsRecordPieces (opcode: number, payload: Uint8Array): Uint8Array[] {
  if (payload.byteLength < COPY_BELOW) return [encodeWsRecord(opcode, payload)]
  return [wsRecordHeader(opcode, payload.byteLength), payload]
}

/**
 * A close record: code + reason (reason cut to fit a control frame, 123 bytes); code 1005
 * (no status) is the empty close record.
 */
export function encodeWsClose (code: number, reason = ''): Buffer {
  if (code === WsClose.NO_STATUS) return encodeWsRecord(WsOp.CLOSE)
  let r = Buffer.from(reason)
  if (r.length > 123) r = r.subarray(0, 123)
  const out = Buffer.allocUnsafe(WS_RECORD_HEADER + 2 + r.length)
  out[0] = WsOp.CLOSE
  out.writeUInt32BE(2 + r.length, 1)
  out.writeUInt16BE(code, WS_RECORD_HEADER)
  r.copy(out, WS_RECORD_HEADER + 2)
  return out
}

/** Code and reason of a close payload (1005 when it has none). */
export function decodeWsClose (payload: Uint8Array): { code: number, reason: string } {
  if (payload.byteLength < 2) return { code: WsClose.NO_STATUS, reason: '' }
  const b = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return { code: b.readUInt16BE(0), reason: b.toString('utf8', 2) }
}

/** Codes an endpoint may send in a close frame (RFC 6455 §7.4). */
export function isValidCloseCode (code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)
}

const KNOWN = new Set<number>([WsOp.TEXT, WsOp.BINARY, WsOp.CLOSE, WsOp.PING, WsOp.PONG])

/**
 * Push decoder for the record stream of one direction. Chunks may split records anywhere;
 * a payload that spans chunks is joined (the only copy), bounded by `maxMessage`.
 */
export class WsRecordDecoder {
  readonly maxMessage: number
  #onRecord: (opcode: number, payload: Buffer) => void
  #head = Buffer.allocUnsafe(WS_RECORD_HEADER)
  #headFill = 0
  #opcode = 0
  #body: Buffer | null = null
  #bodyFill = 0

  constructor (maxMessage: number, onRecord: (opcode: number, payload: Buffer) => void) {
    this.maxMessage = maxMessage
    this.#onRecord = onRecord
  }

  /** True between records (a stream may end only there). */
  get idle (): boolean {
    return this.#headFill === 0 && this.#body === null
  }

  /** Feed bytes; throws FerryError FERRY_ERR_WS_RECORD (bad opcode) or FERRY_ERR_WS_TOO_LARGE. */
  push (chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let off = 0
    const end = buf.length
    while (off < end) {
      const body = this.#body
      if (body !== null) {
        const n = Math.min(body.length - this.#bodyFill, end - off)
        buf.copy(body, this.#bodyFill, off, off + n)
        this.#bodyFill += n
        off += n
        if (this.#bodyFill === body.length) {
          this.#body = null
          this.#onRecord(this.#opcode, body)
        }
        continue
      }
      if (this.#headFill === 0 && end - off >= WS_RECORD_HEADER) {
        // fast path: the whole header in this chunk, maybe the whole payload too
        const opcode = buf[off]!
        const len = buf.readUInt32BE(off + 1)
        this.#check(opcode, len)
        off += WS_RECORD_HEADER
        if (end - off >= len) {
          const payload = buf.subarray(off, off + len)
          off += len
          this.#onRecord(opcode, payload)
        } else {
          this.#start(opcode, len)
        }
        continue
      }
      const n = Math.min(WS_RECORD_HEADER - this.#headFill, end - off)
      buf.copy(this.#head, this.#headFill, off, off + n)
      this.#headFill += n
      off += n
      if (this.#headFill < WS_RECORD_HEADER) continue
      this.#headFill = 0
      const opcode = this.#head[0]!
      const len = this.#head.readUInt32BE(1)
      this.#check(opcode, len)
      if (len === 0) this.#onRecord(opcode, Buffer.alloc(0))
      else this.#start(opcode, len)
    }
  }

  #start (opcode: number, len: number): void {
    this.#opcode = opcode
    this.#body = Buffer.allocUnsafe(len)
    this.#bodyFill = 0
  }

  #check (opcode: number, len: number): void {
    if (!KNOWN.has(opcode)) throw protocolError('FERRY_ERR_WS_RECORD', `opcode 0x${opcode.toString(16)}`)
    if (opcode >= WsOp.CLOSE && len > 125) throw protocolError('FERRY_ERR_WS_RECORD', `control record of ${len} bytes`)
    if (len > this.maxMessage) throw protocolError('FERRY_ERR_WS_TOO_LARGE', `${len} bytes > ${this.maxMessage}`)
  }
}
