/**
 * The request model shared by both codecs and both tiers.
 *
 * Headers are a flat list `[name0, value0, name1, value1, …]` (the shape of Node's
 * `rawHeaders`): order and repeats are preserved, names are lower-case. No object per
 * header, no map — the cheapest form to build from an HTTP parser and to encode.
 */
export type HeaderList = string[]

export interface RequestHead {
  /** Upper-case method, e.g. "GET". */
  method: string
  /** Path and query exactly as the client sent them (origin form). */
  path: string
  /** Host the client asked for. Trusted: set by the front, not copied from a forgeable header. */
  authority: string
  /** "http" or "https": how the client reached the front. */
  scheme: string
  headers: HeaderList
  /** Client address and port as the front saw them. */
  remoteAddress: string
  remotePort: number
  /** Request id; follows the request through both tiers and every log line about it. */
  requestId: string
  /** 0 = no body, N = exactly N bytes, -1 = streamed (length unknown until END_STREAM). */
  bodyLength: number
  /** The front listener's name/address and port (uwsgi SERVER_NAME / SERVER_PORT). */
  serverName: string
  serverPort: number
  /** The HTTP version the client spoke, e.g. "HTTP/1.1". */
  protocol: string
}

export interface ResponseHead {
  status: number
  headers: HeaderList
  /** 0 = no body, N = exactly N bytes, -1 = streamed until END_STREAM. */
  bodyLength: number
}

/** Limits one side accepts; exchanged in HELLO. */
export interface Limits {
  /** Largest frame payload accepted, bytes. */
  maxFramePayload: number
  /** Largest encoded head (HEADERS payload) accepted, bytes. */
  maxHeadBytes: number
  /** Most concurrently open streams the peer may open towards this side. */
  maxConcurrentStreams: number
  /** Initial per-stream receive window for DATA, bytes. */
  initialWindow: number
  /** Connection-level receive window for DATA, bytes. */
  connectionWindow: number
}

/** A RequestHead with every field at its empty value; spread it to build heads in tests. */
export function emptyRequestHead (): RequestHead {
  return {
    method: 'GET',
    path: '/',
    authority: '',
    scheme: 'http',
    headers: [],
    remoteAddress: '',
    remotePort: 0,
    requestId: '',
    bodyLength: 0,
    serverName: '',
    serverPort: 0,
    protocol: 'HTTP/1.1'
  }
}
