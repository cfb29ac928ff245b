/**
 * Wire constants of the ferry native protocol (docs/protocol.md is the normative text).
 * `as const` objects rather than enums, so Node's type stripping stays an option.
 */

/** Protocol major version carried in HELLO. Peers reject any other major. */
export const PROTOCOL_VERSION = 1

/**
 * The 8 bytes a client sends first on a native connection. The first byte (0x89) can never
 * start a uwsgi packet the app-server accepts (modifier1 must be 0), so one listener tells
 * the codecs apart by the first byte.
 */
export const PREFACE = Buffer.from([0x89, 0x46, 0x45, 0x52, 0x52, 0x59, 0x0d, 0x0a]) // \x89FERRY\r\n

/** Fixed frame header: u24 payload length, u8 type, u8 flags, u32 stream id (all big-endian). */
export const FRAME_HEADER_SIZE = 9

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  RESET: 0x2,
  GOAWAY: 0x3,
  PING: 0x4,
  WINDOW_UPDATE: 0x5,
  HELLO: 0x6
} as const
export type FrameType = (typeof FrameType)[keyof typeof FrameType]
export const FRAME_TYPE_MAX = 0x6

export const FrameTypeName: Record<number, string> = {
  0: 'DATA',
  1: 'HEADERS',
  2: 'RESET',
  3: 'GOAWAY',
  4: 'PING',
  5: 'WINDOW_UPDATE',
  6: 'HELLO'
}

export const Flags = {
  /** DATA/HEADERS: the sender's half of the stream ends with this frame. */
  END_STREAM: 0x1,
  /** PING/HELLO: this frame answers the peer's. */
  ACK: 0x2
} as const

/** Numeric codes carried in RESET and GOAWAY frames. */
export const ResetCode = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  /** The stream was not processed at all: always safe to retry elsewhere. */
  REFUSED_STREAM: 4,
  CANCEL: 5,
  TIMEOUT: 6,
  FRAME_SIZE_ERROR: 7,
  OVERLOADED: 8,
  AUTH_FAILED: 9
} as const
export type ResetCode = (typeof ResetCode)[keyof typeof ResetCode]

/** Largest payload the u24 length can express. */
export const MAX_FRAME_PAYLOAD_LIMIT = 0xffffff
/** Largest flow-control window (as in HTTP/2). */
export const MAX_WINDOW = 0x7fffffff
/** Largest stream id (31 bits; the top bit is reserved and must be 0). */
export const MAX_STREAM_ID = 0x7fffffff

/** Defaults used when a HELLO field is 0 or absent. */
export const DEFAULT_LIMITS = {
  maxFramePayload: 65536,
  maxHeadBytes: 65536,
  maxConcurrentStreams: 1024,
  initialWindow: 262144,
  connectionWindow: 16777216
} as const

/** Smallest values a peer may announce (smaller ones are a protocol error). */
export const MIN_LIMITS = {
  maxFramePayload: 1024,
  maxHeadBytes: 1024,
  maxConcurrentStreams: 1,
  initialWindow: 1024,
  connectionWindow: 1024
} as const
