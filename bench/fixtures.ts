/**
 * The requests every codec is measured on, as the front hands them to a codec: a RequestHead
 * (headers lower-case, hop-by-hop removed, Host kept in the list as the front keeps it, the
 * trusted facts in their own fields) plus the body bytes. HTTP/1.1 text carries only what a
 * client sends (request line + headers), so the native and uwsgi heads carry more facts
 * than the text they are compared with — the comparison is conservative.
 */
import { emptyRequestHead, type RequestHead, type ResponseHead } from '@ferry/protocol'

export interface RequestCase {
  name: string
  label: string
  head: RequestHead
  body: Buffer
}

const FACTS = {
  scheme: 'http',
  remoteAddress: '127.0.0.1',
  remotePort: 51234,
  requestId: '6f1c2a9b1f3e-1k3',
  serverName: '127.0.0.1',
  serverPort: 8080,
  protocol: 'HTTP/1.1'
}

const minimalGet: RequestCase = {
  name: 'minimal-get',
  label: 'minimal GET',
  head: {
    ...emptyRequestHead(),
    ...FACTS,
    method: 'GET',
    path: '/',
    authority: 'localhost',
    headers: ['host', 'localhost']
  },
  body: Buffer.alloc(0)
}

/** Chrome 124 navigating to a product page: 13 headers, ≈ 550 bytes as HTTP/1.1 text. */
const browserGet: RequestCase = {
  name: 'browser-get',
  label: 'browser GET (13 headers)',
  head: {
    ...emptyRequestHead(),
    ...FACTS,
    method: 'GET',
    path: '/products/42?ref=home',
    authority: 'shop.example.com',
    headers: [
      'host', 'shop.example.com',
      'cache-control', 'max-age=0',
      'sec-ch-ua', '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
      'sec-ch-ua-mobile', '?0',
      'sec-ch-ua-platform', '"Linux"',
      'upgrade-insecure-requests', '1',
      'user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
      'accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
      'sec-fetch-site', 'same-origin',
      'sec-fetch-mode', 'navigate',
      'referer', 'https://shop.example.com/',
      'accept-encoding', 'gzip, deflate, br',
      'accept-language', 'en-US,en;q=0.9'
    ]
  },
  body: Buffer.alloc(0)
}

const POST_BODY = Buffer.alloc(16 * 1024, 'x')

const post16k: RequestCase = {
  name: 'post-16k',
  label: 'POST 16 KiB',
  head: {
    ...emptyRequestHead(),
    ...FACTS,
    method: 'POST',
    path: '/api/upload',
    authority: 'localhost:8080',
    headers: [
      'host', 'localhost:8080',
      'user-agent', 'curl/7.88.1',
      'accept', '*/*',
      'content-type', 'application/octet-stream',
      'content-length', String(POST_BODY.length)
    ],
    bodyLength: POST_BODY.length
  },
  body: POST_BODY
}

export const REQUEST_CASES: readonly RequestCase[] = [minimalGet, browserGet, post16k]

/** The hello-world answer of the end-to-end bench, for the response half of the framing cost. */
export const HELLO_RESPONSE: { head: ResponseHead, body: Buffer } = {
  head: { status: 200, headers: ['content-type', 'text/plain;charset=UTF-8'], bodyLength: 11 },
  body: Buffer.from('hello world')
}
