/**
 * A small native client for app-server tests: connect to an address, wait for HELLO, send
 * requests and collect responses (head + body as one Buffer), with streaming helpers.
 */
import net from 'node:net'
import { emptyRequestHead, type FerryError, parseAddress, type RequestHead, type ResponseHead, Session, type Stream } from '@ferry/protocol'

export interface Reply {
  status: number
  headers: string[]
  body: Buffer
  head: ResponseHead
  /** Header value (first), lower-case name. */
  get (name: string): string | undefined
}

export async function connect (address: string): Promise<Session> {
  const a = parseAddress(address)
  const socket = a.kind === 'unix' ? net.connect(a.path) : net.connect(a.port, a.host)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  const session = new Session(socket, { role: 'client', agent: 'test' })
  await new Promise<void>((resolve, reject) => {
    session.once('ready', resolve)
    session.once('error', reject)
  })
  session.on('error', () => {})
  return session
}

export function head (path: string, init: Partial<RequestHead> = {}): RequestHead {
  return { ...emptyRequestHead(), authority: 'test.local', path, ...init }
}

function makeReply (h: ResponseHead, chunks: Buffer[]): Reply {
  return {
    status: h.status,
    headers: h.headers,
    body: Buffer.concat(chunks),
    head: h,
    get (name: string) {
      for (let i = 0; i < h.headers.length; i += 2) if (h.headers[i] === name) return h.headers[i + 1]
      return undefined
    }
  }
}

/** Send one request; `body` is written whole (respecting backpressure) then ended. */
export function request (session: Session, h: RequestHead, body?: Uint8Array | string): Promise<Reply> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body
  if (bytes !== undefined && h.bodyLength === 0) h = { ...h, bodyLength: bytes.byteLength }
  const stream = session.request(h, bytes === undefined)
  return collect(stream, bytes === undefined ? undefined : async (s) => {
    if (!s.write(bytes)) await drained(s)
    s.end()
  })
}

export function drained (s: Stream): Promise<void> {
  return new Promise((resolve) => { s.onDrain = () => resolve() })
}

/** Collect a response on `stream`; `feed` writes the request body. */
export function collect (stream: Stream, feed?: (s: Stream) => Promise<void>): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const chunks: Buffer[] = []
    let resp: ResponseHead | null = null
    stream.onResponse = (h) => { resp = h }
    stream.onData = (c) => { chunks.push(Buffer.from(c)) }
    stream.onEnd = () => {
      if (resp === null) reject(new Error('end without response'))
      else resolve(makeReply(resp, chunks))
    }
    stream.onError = (err: FerryError) => {
      // A RESET NO_ERROR after a complete response is fine (unread request body).
      if (resp !== null && stream.remoteEnded && err.resetCode === 0) return
      reject(err)
    }
    if (feed !== undefined) feed(stream).catch(reject)
  })
}
