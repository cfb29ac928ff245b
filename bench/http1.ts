/**
 * HTTP/1.1 text as the third codec of the micro-bench. Encoding builds the request (or
 * response) text as a reverse proxy would write it upstream — the client's headers plus the
 * facts the native head carries in its own fields, as the headers nginx setups pass
 * (X-Forwarded-For, X-Forwarded-Proto, X-Request-Id; the client and server ports are not
 * carried, so the text still holds less than the native head); decoding runs Node's own llhttp parser — the
 * HTTPParser binding that node:http uses, reached through the legacy `_http_common` module —
 * and builds the same RequestHead shape the native decoder returns (lower-case names), so
 * both sides do the same work.
 */
import { createRequire } from 'node:module'
import type { HeaderList, RequestHead, ResponseHead } from '@ferry/protocol'

interface LlhttpParser {
  initialize (type: number, resource: object, maxHeaderSize?: number, lenient?: number): void
  execute (data: Buffer): number | Error
  [key: number]: unknown
}

interface LlhttpModule {
  HTTPParser: {
    new (): LlhttpParser
    REQUEST: number
    RESPONSE: number
    kOnHeadersComplete: number
    kOnBody: number
    kOnMessageComplete: number
  }
  methods: string[]
}

const llhttp = createRequire(import.meta.url)('_http_common') as LlhttpModule
const { HTTPParser, methods } = llhttp

export function encodeHttp1Request (head: RequestHead): Buffer {
  let s = `${head.method} ${head.path} ${head.protocol}\r\n`
  const h = head.headers
  for (let i = 0; i < h.length; i += 2) s += `${h[i]}: ${h[i + 1]}\r\n`
  if (head.remoteAddress !== '') s += `x-forwarded-for: ${head.remoteAddress}\r\n`
  if (head.scheme !== '') s += `x-forwarded-proto: ${head.scheme}\r\n`
  if (head.requestId !== '') s += `x-request-id: ${head.requestId}\r\n`
  return Buffer.from(`${s}\r\n`, 'latin1')
}

export function encodeHttp1Response (head: ResponseHead): Buffer {
  let s = `HTTP/1.1 ${head.status} ${head.status === 200 ? 'OK' : 'Status'}\r\n`
  const h = head.headers
  for (let i = 0; i < h.length; i += 2) s += `${h[i]}: ${h[i + 1]}\r\n`
  if (head.bodyLength >= 0) s += `content-length: ${head.bodyLength}\r\n`
  return Buffer.from(`${s}\r\n`, 'latin1')
}

function lowerNames (raw: string[]): HeaderList {
  const out: HeaderList = new Array(raw.length)
  for (let i = 0; i < raw.length; i += 2) {
    out[i] = raw[i]!.toLowerCase()
    out[i + 1] = raw[i + 1]!
  }
  return out
}

/** A reusable llhttp parser for one direction of a keep-alive connection. */
export class Http1Parser {
  #parser: LlhttpParser
  #bodyBytes = 0
  #request: RequestHead | null = null
  #response: ResponseHead | null = null
  #complete = false

  constructor (kind: 'request' | 'response') {
    const p = new HTTPParser()
    p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, 0)
    p[HTTPParser.kOnHeadersComplete] = kind === 'request'
      ? (major: number, minor: number, raw: string[], method: number, url: string) => {
          const headers = lowerNames(raw)
          let authority = ''
          let bodyLength = 0
          let remoteAddress = ''
          let scheme = 'http'
          let requestId = ''
          for (let i = 0; i < headers.length; i += 2) {
            const name = headers[i]
            if (name === 'host') authority = headers[i + 1]!
            else if (name === 'content-length') bodyLength = Number(headers[i + 1])
            else if (name === 'x-forwarded-for') remoteAddress = headers[i + 1]!
            else if (name === 'x-forwarded-proto') scheme = headers[i + 1]!
            else if (name === 'x-request-id') requestId = headers[i + 1]!
          }
          this.#request = {
            method: methods[method]!,
            path: url,
            authority,
            scheme,
            headers,
            remoteAddress,
            remotePort: 0,
            requestId,
            bodyLength,
            serverName: '',
            serverPort: 0,
            protocol: `HTTP/${major}.${minor}`
          }
        }
      : (_major: number, _minor: number, raw: string[], _method: number, _url: string, status: number) => {
          const headers = lowerNames(raw)
          let bodyLength = -1
          for (let i = 0; i < headers.length; i += 2) {
            if (headers[i] === 'content-length') bodyLength = Number(headers[i + 1])
          }
          this.#response = { status, headers, bodyLength }
        }
    p[HTTPParser.kOnBody] = (b: Buffer) => { this.#bodyBytes += b.length }
    p[HTTPParser.kOnMessageComplete] = () => { this.#complete = true }
    this.#parser = p
  }

  #run (wire: Buffer): void {
    this.#bodyBytes = 0
    this.#complete = false
    const r = this.#parser.execute(wire)
    if (r instanceof Error) throw r
    if (!this.#complete) throw new Error('HTTP/1.1 message incomplete')
  }

  /** Parses one whole request; returns its head and the number of body bytes seen. */
  parseRequest (wire: Buffer): { head: RequestHead, bodyBytes: number } {
    this.#run(wire)
    return { head: this.#request!, bodyBytes: this.#bodyBytes }
  }

  parseResponse (wire: Buffer): { head: ResponseHead, bodyBytes: number } {
    this.#run(wire)
    return { head: this.#response!, bodyBytes: this.#bodyBytes }
  }
}
