/**
 * Scenario 8 — hostile HTTP to the front: request smuggling (Content-Length with
 * Transfer-Encoding, duplicate Content-Length), CR/LF/NUL in header values, oversized heads
 * and bodies, invalid methods, targets and header names, `..` in static paths — each on its
 * own raw connection. The app node runs a recorder (FERRY_FAULT_RECORD) so the test sees
 * exactly what reached the app tier. Also: a client's X-Forwarded-For / -Proto is not
 * believed unless the front trusts the peer (--forwarded-allow-ips).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { cleanup, RssSampler, type ScenarioReport, startFront, startNode } from '../harness.ts'

export const SECRET = 'TOP-SECRET-4c1f'

export interface HttpCase {
  name: string
  raw: string | Buffer
  /** Acceptable statuses (first one is what we expect; more when the standard allows). */
  expect: number[]
}

const H = 'Host: ferry.test\r\n'
const SMUGGLED = `GET /rec/smuggled HTTP/1.1\r\n${H}\r\n`

export const CASES: HttpCase[] = [
  { name: 'CL + TE (CL first), smuggled request after', raw: `POST /rec/a HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: [400] },
  { name: 'TE + CL (TE first), smuggled request after', raw: `POST /rec/b HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: [400] },
  { name: 'duplicate Content-Length, different values', raw: `POST /rec/c HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 41\r\n\r\nhello${SMUGGLED}`, expect: [400] },
  { name: 'Content-Length list "5, 41"', raw: `POST /rec/d HTTP/1.1\r\n${H}Content-Length: 5, 41\r\n\r\nhello${SMUGGLED}`, expect: [400] },
  { name: 'obfuscated Transfer-Encoding "xchunked"', raw: `POST /rec/e HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: [400, 501] },
  { name: 'Transfer-Encoding with a space before the colon', raw: `POST /rec/f HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`, expect: [400] },
  { name: 'bad chunk size', raw: `POST /rec/g HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, expect: [400] },
  { name: 'bare CR inside a header value', raw: `GET /rec/h HTTP/1.1\r\n${H}X-A: one\rX-Injected: 1\r\n\r\n`, expect: [400] },
  { name: 'bare LF inside a header value (header injection)', raw: `GET /rec/i HTTP/1.1\r\n${H}X-A: one\nX-Injected: 1\r\n\r\n`, expect: [400] },
  { name: 'NUL in a header value', raw: `GET /rec/j HTTP/1.1\r\n${H}X-A: a\u0000b\r\n\r\n`, expect: [400] },
  { name: 'obs-fold continuation line', raw: `GET /rec/k HTTP/1.1\r\n${H}X-A: one\r\n two\r\n\r\n`, expect: [400] },
  { name: 'invalid header name', raw: `GET /rec/l HTTP/1.1\r\n${H}X@A: b\r\n\r\n`, expect: [400] },
  { name: 'head over --max-header-size (16 KiB)', raw: `GET /rec/m HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(20000)}\r\n\r\n`, expect: [431] },
  { name: 'body over --max-body (Content-Length)', raw: `POST /rec/n HTTP/1.1\r\n${H}Content-Length: 4096\r\n\r\n${'b'.repeat(4096)}`, expect: [413] },
  { name: 'body over --max-body (chunked)', raw: `POST /rec/o HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n1000\r\n${'b'.repeat(4096)}\r\n0\r\n\r\n`, expect: [413] },
  { name: 'invalid method token', raw: `G(T /rec/p HTTP/1.1\r\n${H}\r\n`, expect: [400] },
  { name: 'unknown method', raw: `BREW /rec/q HTTP/1.1\r\n${H}\r\n`, expect: [400, 405, 501] },
  { name: 'target with a space', raw: `GET /rec/r x HTTP/1.1\r\n${H}\r\n`, expect: [400] },
  { name: 'HTTP/1.1 without Host', raw: 'GET /rec/s HTTP/1.1\r\n\r\n', expect: [400] },
  { name: 'bad HTTP version', raw: `GET /rec/t HTTP/9.9\r\n${H}\r\n`, expect: [400, 505] },
  { name: 'static: /../secret.txt', raw: `GET /../secret.txt HTTP/1.1\r\n${H}\r\n`, expect: [404, 400, 403] },
  { name: 'static: /%2e%2e/secret.txt', raw: `GET /%2e%2e/secret.txt HTTP/1.1\r\n${H}\r\n`, expect: [404, 400, 403] },
  // Not a static file: falls through to the app, the encoded slash still encoded (as nginx does).
  { name: 'static miss /rec/..%2fsecret.txt goes to the app as sent', raw: `GET /rec/..%2fsecret.txt HTTP/1.1\r\n${H}\r\n`, expect: [200] },
  { name: 'static: /sub/..%5c..%5csecret.txt', raw: `GET /sub/..%5c..%5csecret.txt HTTP/1.1\r\n${H}\r\n`, expect: [404, 400, 403] },
  { name: 'static: NUL in the path', raw: `GET /index.html%00.txt HTTP/1.1\r\n${H}\r\n`, expect: [404, 400, 403] }
]

export interface CaseResult {
  name: string
  status: number
  expect: number[]
  /** The response carried the secret file's content. */
  leaked: boolean
  /** A second response on the same connection (a smuggled request was served). */
  responses: number
}

/** Sends raw bytes, reads until the front closes (or 3 s), returns the statuses seen. */
function rawExchange (port: number, raw: string | Buffer): Promise<{ text: string }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const finish = (): void => {
      clearTimeout(timer)
      s.destroy()
      resolve({ text: Buffer.concat(chunks).toString('latin1') })
    }
    const timer = setTimeout(finish, 3000)
    s.on('data', (d: Buffer) => chunks.push(d))
    s.on('error', finish)
    s.on('close', finish)
    s.on('connect', () => s.write(raw))
  })
}

export interface Recorded {
  method: string
  url: string
  headers: [string, string][]
  body: string
  remoteAddress: string
}

export interface HostileHttpResult {
  report: ScenarioReport
  cases: CaseResult[]
  recorded: Recorded[]
  forged: { untrusted: Recorded | null, trusted: Recorded | null }
  alive: boolean
}

function readRecord (path: string): Recorded[] {
  let text = ''
  try { text = readFileSync(path, 'utf8') } catch { return [] }
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Recorded)
}

export async function hostileHttp (): Promise<HostileHttpResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f8-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const pub = join(dir, 'public')
    mkdirSync(join(pub, 'sub'), { recursive: true })
    writeFileSync(join(pub, 'index.html'), '<h1>ferry</h1>')
    writeFileSync(join(dir, 'secret.txt'), SECRET)
    const record = join(dir, 'record.jsonl')
    const node = await startNode(c, dir, 'n1', ['--threads', '1'], { FERRY_FAULT_RECORD: record })
    const upstream = `unix:${join(dir, 'n1.sock')}`
    const front = await startFront(c, [upstream], ['--static', pub, '--max-body', '1k'])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const port = Number(front.addresses[0]!.split(':').pop())
    const cases: CaseResult[] = []
    for (const k of CASES) {
      const { text } = await rawExchange(port, k.raw)
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]))
      cases.push({ name: k.name, status: statuses[0] ?? 0, expect: k.expect, leaked: text.includes(SECRET), responses: statuses.length })
    }
    const recorded = readRecord(record)
    // Forged X-Forwarded-For / -Proto: not believed from an untrusted peer…
    const forgedHead = `GET /rec/forged HTTP/1.1\r\n${H}X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n`
    const before = recorded.length
    await rawExchange(port, forgedHead)
    const untrusted = readRecord(record).slice(before).find((r) => r.url.includes('/rec/forged')) ?? null
    // …and believed when the operator trusts the peer (the control).
    const trustedFront = await startFront(c, [upstream], ['--forwarded-allow-ips', '127.0.0.1'])
    const n = readRecord(record).length
    await rawExchange(Number(trustedFront.addresses[0]!.split(':').pop()), forgedHead)
    const trusted = readRecord(record).slice(n).find((r) => r.url.includes('/rec/forged')) ?? null
    const alive = node.proc.exitCode === null && front.proc.exitCode === null
    const bad = cases.filter((k) => !k.expect.includes(k.status) || k.leaked || k.responses > 1)
    const report: ScenarioReport = {
      scenario: '8 hostile HTTP to the front',
      load: `${CASES.length} hostile requests (smuggling, CR/LF/NUL, oversize, bad method/target, ..) + forged X-Forwarded-For`,
      sent: CASES.length + 2,
      failed: bad.length,
      p99ms: 0,
      peakRssMiB: rss.peaks(),
      notes: [`statuses: ${cases.map((k) => k.status).join(' ')}`, `requests that reached the app: ${recorded.length} (${recorded.map((r) => `${r.method} ${new URL(r.url).pathname}`).join(', ')})`]
    }
    return { report, cases, recorded, forged: { untrusted, trusted }, alive }
  } finally {
    await c.run()
  }
}
