/**
 * Errors of the protocol package. Every error is a FerryError with a stable `code`
 * (`FERRY_ERR_<AREA>_<WHAT>`), the HTTP status a tier should answer with where one applies,
 * and the numeric reset code to send on the wire. Users match on `code`.
 *
 * `scope` says what the error closes: 'connection' errors end the whole connection (after a
 * GOAWAY where possible); 'stream' errors reset only the offending stream.
 * Every code here is documented in docs/protocol.md (a test checks that).
 */
import { ResetCode } from './constants.js'

export type ErrorScope = 'connection' | 'stream'

export interface ErrorInfo {
  readonly message: string
  readonly statusCode: number
  readonly resetCode: ResetCode
  readonly scope: ErrorScope
}

function info (message: string, statusCode: number, resetCode: ResetCode, scope: ErrorScope): ErrorInfo {
  return { message, statusCode, resetCode, scope }
}

const P = ResetCode.PROTOCOL_ERROR

/** Every error code of the protocol package, with its default message and answers. */
export const PROTOCOL_ERRORS = {
  // native framing
  FERRY_ERR_PREFACE: info('connection did not start with the ferry preface', 502, P, 'connection'),
  FERRY_ERR_FRAME_TOO_LARGE: info('frame payload exceeds the negotiated maximum', 502, ResetCode.FRAME_SIZE_ERROR, 'connection'),
  FERRY_ERR_FRAME_UNKNOWN_TYPE: info('unknown frame type', 502, P, 'connection'),
  FERRY_ERR_FRAME_BAD_STREAM: info('frame carries a stream id not allowed for its type or role', 502, P, 'connection'),
  FERRY_ERR_FRAME_BAD_LENGTH: info('frame payload has the wrong length for its type', 502, ResetCode.FRAME_SIZE_ERROR, 'connection'),
  FERRY_ERR_FRAME_BAD_FLAGS: info('frame carries flags not defined for its type', 502, P, 'connection'),
  FERRY_ERR_HELLO_REQUIRED: info('the first frame of a connection must be HELLO', 502, P, 'connection'),
  FERRY_ERR_HELLO_VERSION: info('peer speaks an unsupported protocol version', 502, P, 'connection'),
  FERRY_ERR_HELLO_LIMITS: info('peer announced limits outside the allowed range', 502, P, 'connection'),
  FERRY_ERR_HELLO_TIMEOUT: info('peer did not send HELLO in time', 502, P, 'connection'),
  FERRY_ERR_HELLO_DUPLICATE: info('peer sent a second HELLO', 502, P, 'connection'),
  FERRY_ERR_AUTH: info('shared-secret authentication failed (no proof, or a wrong one)', 502, ResetCode.AUTH_FAILED, 'connection'),
  FERRY_ERR_HEAD_TOO_LARGE: info('encoded head exceeds the negotiated maximum', 431, ResetCode.FRAME_SIZE_ERROR, 'stream'),
  FERRY_ERR_HEAD_INVALID: info('head could not be decoded or holds invalid fields', 502, P, 'stream'),
  FERRY_ERR_PAYLOAD_INVALID: info('control frame payload could not be decoded', 502, P, 'connection'),
  FERRY_ERR_FLOW_CONTROL: info('peer sent DATA beyond its flow-control window', 502, ResetCode.FLOW_CONTROL_ERROR, 'connection'),
  FERRY_ERR_WINDOW_OVERFLOW: info('WINDOW_UPDATE would grow a window past 2^31-1', 502, ResetCode.FLOW_CONTROL_ERROR, 'connection'),
  FERRY_ERR_WINDOW_ZERO: info('WINDOW_UPDATE with an increment of 0', 502, P, 'connection'),
  FERRY_ERR_STREAM_LIMIT: info('too many concurrent streams', 503, ResetCode.REFUSED_STREAM, 'stream'),
  FERRY_ERR_STREAM_ID: info('stream id is not above every earlier one, or has the wrong parity', 502, P, 'connection'),
  FERRY_ERR_STREAM_STATE: info('frame not allowed in the stream\'s current state', 502, P, 'stream'),
  FERRY_ERR_STREAM_RESET: info('stream was reset by the peer', 502, ResetCode.CANCEL, 'stream'),
  FERRY_ERR_BODY_LENGTH: info('body length differs from the length the head declared', 400, P, 'stream'),
  FERRY_ERR_GOAWAY: info('connection is going away: no new streams', 503, ResetCode.REFUSED_STREAM, 'stream'),
  FERRY_ERR_SESSION_CLOSED: info('connection closed before the stream finished', 502, ResetCode.CANCEL, 'stream'),
  FERRY_ERR_SESSION_INTERNAL: info('internal error while handling a frame', 502, ResetCode.INTERNAL_ERROR, 'connection'),
  FERRY_ERR_PEER_GOAWAY: info('peer closed the connection with an error code', 502, P, 'connection'),
  FERRY_ERR_PING_TIMEOUT: info('peer did not answer PING in time', 502, ResetCode.TIMEOUT, 'connection'),
  FERRY_ERR_ADDRESS_INVALID: info('address is not unix:/path, tcp://host:port or host:port', 500, ResetCode.INTERNAL_ERROR, 'connection'),
  // uwsgi codec
  FERRY_ERR_UWSGI_MODIFIER: info('uwsgi packet with a modifier1 other than 0', 400, P, 'connection'),
  FERRY_ERR_UWSGI_TOO_LARGE: info('uwsgi vars block exceeds the buffer limit', 431, P, 'connection'),
  FERRY_ERR_UWSGI_VARS: info('uwsgi vars block is malformed', 400, P, 'connection'),
  FERRY_ERR_UWSGI_TRUNCATED: info('uwsgi packet ended before its declared size', 400, P, 'connection'),
  FERRY_ERR_UWSGI_ENCODE_TOO_LARGE: info('request does not fit a uwsgi vars block (65535 bytes)', 431, P, 'stream'),
  FERRY_ERR_UWSGI_LENGTH_REQUIRED: info('uwsgi needs CONTENT_LENGTH before the body: buffer a streamed body first', 411, P, 'stream'),
  // WebSocket records on a native stream (ws-record.ts)
  FERRY_ERR_WS_RECORD: info('malformed WebSocket record (unknown opcode, or a control record over 125 bytes)', 502, P, 'stream'),
  FERRY_ERR_WS_TOO_LARGE: info('WebSocket message exceeds the maximum message size', 413, ResetCode.CANCEL, 'stream'),
  // HTTP/1.x responses from uwsgi peers
  FERRY_ERR_HTTP1_PARSE: info('malformed HTTP/1.x response from upstream', 502, P, 'connection'),
  FERRY_ERR_HTTP1_HEAD_TOO_LARGE: info('HTTP/1.x response head exceeds the limit', 502, P, 'connection'),
  FERRY_ERR_HTTP1_TRUNCATED: info('upstream closed before the response body was complete', 502, P, 'connection'),
  FERRY_ERR_HTTP1_HEADER_INVALID: info('response header name or value cannot be written in HTTP/1.x (CR, LF, NUL or not a token)', 500, ResetCode.INTERNAL_ERROR, 'stream')
} as const satisfies Record<string, ErrorInfo>

export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS

export interface FerryErrorOptions {
  cause?: unknown
  statusCode?: number
  resetCode?: number
  scope?: ErrorScope
  /** Stream the error concerns, when it concerns one. */
  streamId?: number
}

/**
 * Base class of every ferry error (the other packages extend the code table, not the class
 * hierarchy). Across a worker-thread boundary it travels as `toJSON()`.
 */
export class FerryError extends Error {
  readonly code: string
  readonly statusCode: number
  readonly resetCode: number
  readonly scope: ErrorScope
  readonly streamId: number

  constructor (code: string, message: string, options: FerryErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'FerryError'
    this.code = code
    this.statusCode = options.statusCode ?? 500
    this.resetCode = options.resetCode ?? ResetCode.INTERNAL_ERROR
    this.scope = options.scope ?? 'stream'
    this.streamId = options.streamId ?? 0
  }

  toJSON (): { code: string, message: string, statusCode: number } {
    return { code: this.code, message: this.message, statusCode: this.statusCode }
  }
}

/**
 * Builds the FerryError for a protocol code, with the table's message unless `detail` adds one.
 * `protocolError('FERRY_ERR_FRAME_TOO_LARGE', 'payload 70000 > 65536')`.
 */
export function protocolError (code: ProtocolErrorCode, detail?: string, options: FerryErrorOptions = {}): FerryError {
  const e = PROTOCOL_ERRORS[code]
  return new FerryError(code, detail === undefined ? e.message : `${e.message}: ${detail}`, {
    statusCode: e.statusCode,
    resetCode: e.resetCode,
    scope: e.scope,
    ...options
  })
}

export function isFerryError (err: unknown): err is FerryError {
  return err instanceof FerryError
}

/** The entry of another package's code table: a default message and the HTTP status. */
export interface CodeInfo {
  readonly message: string
  readonly statusCode: number
}

export function codeInfo (message: string, statusCode: number): CodeInfo {
  return { message, statusCode }
}

/**
 * The error factory of a package's code table (the app-server's, the front's): the table's
 * message unless `detail` adds to it, the table's HTTP status.
 */
export function codedErrorFactory<C extends string> (table: Readonly<Record<C, CodeInfo>>): (code: C, detail?: string, options?: FerryErrorOptions) => FerryError {
  return (code, detail, options = {}) => {
    const e = table[code]
    return new FerryError(code, detail === undefined ? e.message : `${e.message}: ${detail}`, {
      statusCode: e.statusCode,
      ...options
    })
  }
}
