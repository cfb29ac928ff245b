/**
 * Produces the annotated hex dumps of docs/protocol.md from real code: a client Session and
 * a server Session talk over a real unix socket (a GET, a POST, a PING, a RESET, a GOAWAY), every
 * byte each side writes is captured, and each frame and protobuf field is annotated.
 *
 *   node --import tsx scripts/hexdump-examples.ts            print the native dumps (markdown)
 *   node --import tsx scripts/hexdump-examples.ts --uwsgi    print the uwsgi dumps
 *   node --import tsx scripts/hexdump-examples.ts --write-doc  refresh both regions of docs/protocol.md
 *
 * test/protocol/native-doc-examples.test.ts checks that docs/protocol.md holds exactly these
 * dumps, so the document cannot drift from the wire.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  FRAME_HEADER_SIZE, FrameTypeName, HEADER_NAMES, METHODS, PREFACE, type RequestHead, ResetCode, Session, type Stream
} from '@ferry/protocol'

// ── a minimal protobuf walker with field names ─────────────────────────────

type FieldType = 'uint' | 'sint' | 'string' | Schema
interface Schema { name: string, fields: Record<number, [string, FieldType]> }

const HeaderSchema: Schema = { name: 'Header', fields: { 1: ['code', 'uint'], 2: ['name', 'string'], 3: ['value', 'string'] } }
const RequestHeadSchema: Schema = {
  name: 'RequestHead',
  fields: {
    1: ['method', 'uint'], 2: ['method_name', 'string'], 3: ['path', 'string'], 4: ['authority', 'string'],
    5: ['scheme', 'string'], 6: ['headers', HeaderSchema], 7: ['remote_address', 'string'], 8: ['remote_port', 'uint'],
    9: ['request_id', 'string'], 10: ['body_length', 'sint'], 11: ['server_name', 'string'], 12: ['server_port', 'uint'],
    13: ['protocol', 'string']
  }
}
const ResponseHeadSchema: Schema = { name: 'ResponseHead', fields: { 1: ['status', 'uint'], 2: ['headers', HeaderSchema], 3: ['body_length', 'sint'] } }
const LimitsSchema: Schema = {
  name: 'Limits',
  fields: {
    1: ['max_frame_payload', 'uint'], 2: ['max_head_bytes', 'uint'], 3: ['max_concurrent_streams', 'uint'],
    4: ['initial_window', 'uint'], 5: ['connection_window', 'uint']
  }
}
const HelloSchema: Schema = { name: 'Hello', fields: { 1: ['version', 'uint'], 2: ['limits', LimitsSchema], 3: ['auth', 'string'], 4: ['agent', 'string'] } }
const ResetSchema: Schema = { name: 'Reset', fields: { 1: ['code', 'uint'], 2: ['message', 'string'] } }
const GoAwaySchema: Schema = { name: 'GoAway', fields: { 1: ['last_stream_id', 'uint'], 2: ['code', 'uint'], 3: ['message', 'string'] } }

interface Line { offset: number, bytes: Buffer, depth: number, note: string }

function readVarint (b: Buffer, at: number): [number, number] {
  let v = 0
  let mul = 1
  let i = at
  for (;;) {
    const byte = b[i++]!
    v += (byte & 0x7f) * mul
    if (byte < 0x80) return [v, i]
    mul *= 128
  }
}

function walk (b: Buffer, start: number, end: number, schema: Schema, depth: number, base: number, out: Line[]): void {
  let at = start
  while (at < end) {
    const [tag, afterTag] = readVarint(b, at)
    const no = Math.floor(tag / 8)
    const wire = tag & 7
    const [name, type] = schema.fields[no] ?? [`field ${no}`, 'uint']
    if (wire === 0) {
      const [v, next] = readVarint(b, afterTag)
      let shown = String(v)
      if (type === 'sint') shown = `${v % 2 === 0 ? v / 2 : -(v + 1) / 2} (zigzag ${v})`
      if (schema === HeaderSchema && name === 'code') shown += ` = "${HEADER_NAMES[v]}"`
      if (schema === RequestHeadSchema && name === 'method') shown += ` = ${METHODS[v]}`
      out.push({ offset: base + at, bytes: b.subarray(at, next), depth, note: `${no} ${name} = ${shown}` })
      at = next
    } else if (wire === 2) {
      const [len, body] = readVarint(b, afterTag)
      if (typeof type === 'object') {
        out.push({ offset: base + at, bytes: b.subarray(at, body), depth, note: `${no} ${name}: ${type.name}, ${len} bytes` })
        walk(b, body, body + len, type, depth + 1, base, out)
      } else {
        const text = b.subarray(body, body + len).toString('utf8')
        const head = b.subarray(at, body)
        out.push({ offset: base + at, bytes: head, depth, note: `${no} ${name}, ${len} byte${len === 1 ? '' : 's'}:` })
        for (let i = 0; i < len; i += 16) {
          const piece = b.subarray(body + i, body + Math.min(len, i + 16))
          out.push({ offset: base + body + i, bytes: piece, depth: depth + 1, note: i === 0 ? JSON.stringify(text) : '' })
        }
      }
      at = body + len
    } else {
      throw new Error(`unexpected wire type ${wire}`)
    }
  }
}

const FLAG_NAMES: Record<number, Record<number, string>> = {
  0: { 1: 'END_STREAM' },
  1: { 1: 'END_STREAM' },
  4: { 2: 'ACK' },
  6: { 2: 'ACK' }
}

function flagText (type: number, flags: number): string {
  if (flags === 0) return '0'
  const names = FLAG_NAMES[type] ?? {}
  return `0x${flags.toString(16).padStart(2, '0')} ${Object.entries(names).filter(([bit]) => (flags & Number(bit)) !== 0).map(([, n]) => n).join('|')}`
}

/** Annotates a byte stream of frames (after the preface, which is annotated if present). */
function annotate (bytes: Buffer, role: 'client' | 'server'): Line[] {
  const out: Line[] = []
  let at = 0
  if (role === 'client' && bytes.subarray(0, PREFACE.length).equals(PREFACE)) {
    out.push({ offset: 0, bytes: bytes.subarray(0, PREFACE.length), depth: 0, note: 'preface "\\x89FERRY\\r\\n"' })
    at = PREFACE.length
  }
  while (at + FRAME_HEADER_SIZE <= bytes.length) {
    const len = bytes.readUIntBE(at, 3)
    const type = bytes[at + 3]!
    const flags = bytes[at + 4]!
    const stream = bytes.readUInt32BE(at + 5) & 0x7fffffff
    const name = FrameTypeName[type] ?? `type ${type}`
    out.push({ offset: at, bytes: bytes.subarray(at, at + 3), depth: 0, note: `${name} frame: length ${len}` })
    out.push({ offset: at + 3, bytes: bytes.subarray(at + 3, at + 5), depth: 0, note: `type ${type} ${name}, flags ${flagText(type, flags)}` })
    out.push({ offset: at + 5, bytes: bytes.subarray(at + 5, at + 9), depth: 0, note: `stream ${stream}` })
    const p = at + FRAME_HEADER_SIZE
    const payload = bytes.subarray(p, p + len)
    const schema = type === 1 ? (role === 'client' ? RequestHeadSchema : ResponseHeadSchema)
      : type === 2 ? ResetSchema : type === 3 ? GoAwaySchema : type === 6 ? HelloSchema : null
    if (schema !== null) {
      walk(bytes, p, p + len, schema, 1, 0, out)
    } else if (type === 0) {
      for (let i = 0; i < len; i += 16) {
        const piece = payload.subarray(i, Math.min(len, i + 16))
        out.push({ offset: p + i, bytes: piece, depth: 1, note: i === 0 ? `body ${JSON.stringify(payload.toString('utf8'))}` : '' })
      }
    } else if (type === 4) {
      out.push({ offset: p, bytes: payload, depth: 1, note: 'opaque 8 bytes (echoed in the ACK)' })
    } else if (type === 5) {
      out.push({ offset: p, bytes: payload, depth: 1, note: `increment ${payload.readUInt32BE(0) & 0x7fffffff}` })
    }
    at = p + len
  }
  return out
}

function render (lines: Line[]): string {
  const rows: string[] = []
  for (const l of lines) {
    const hexText = [...l.bytes].map((x) => x.toString(16).padStart(2, '0')).join(' ')
    const left = `${l.offset.toString(16).padStart(4, '0')}  ${'  '.repeat(l.depth)}${hexText}`
    rows.push(l.note === '' ? left : `${left.padEnd(62)} ${l.note}`)
  }
  return rows.join('\n')
}

// ── the conversation ───────────────────────────────────────────────────────

const GET_HEAD: RequestHead = {
  method: 'GET',
  path: '/hello?name=ferry',
  authority: 'example.com',
  scheme: 'http',
  headers: ['accept', '*/*', 'user-agent', 'curl/8.5.0'],
  remoteAddress: '127.0.0.1',
  remotePort: 51234,
  requestId: 'r-1',
  bodyLength: 0,
  serverName: '127.0.0.1',
  serverPort: 8080,
  protocol: 'HTTP/1.1'
}

const POST_BODY = Buffer.from('{"n":1}')
const POST_HEAD: RequestHead = {
  ...GET_HEAD,
  method: 'POST',
  path: '/items',
  headers: ['content-type', 'application/json', 'content-length', String(POST_BODY.length), 'x-trace', 'abc'],
  remotePort: 51236,
  requestId: 'r-2',
  bodyLength: POST_BODY.length
}

export interface Capture {
  /** Bytes the client wrote, per step. */
  client: Record<string, Buffer>
  /** Bytes the server wrote, per step. */
  server: Record<string, Buffer>
}

/** Runs the conversation over a real unix socket and returns what each side wrote, per step. */
export async function capture (): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-hexdump-'))
  const path = join(dir, 's.sock')
  const listener = net.createServer()
  const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve))
  await new Promise<void>((resolve) => listener.listen(path, resolve))
  const cs = net.connect(path)
  const ss = await accepted
  listener.close()
  const fromClient: Buffer[] = []
  const fromServer: Buffer[] = []
  ss.on('data', (c: Buffer) => fromClient.push(Buffer.from(c)))
  cs.on('data', (c: Buffer) => fromServer.push(Buffer.from(c)))
  const out: Capture = { client: {}, server: {} }
  // Each step waits for a sign that the other side has processed everything of the step (a
  // tap listener sees every chunk before the Session does), so no sleep decides the split.
  const take = (step: string): void => {
    out.client[step] = Buffer.concat(fromClient.splice(0))
    out.server[step] = Buffer.concat(fromServer.splice(0))
  }

  const server = new Session(ss, { role: 'server', agent: 'ferry-app/0.1.0' })
  const client = new Session(cs, { role: 'client', agent: 'ferry-front/0.1.0' })
  let slowArrived: () => void = () => {}
  let slowReset: () => void = () => {}
  server.on('stream', (s: Stream) => {
    const chunks: Buffer[] = []
    s.onData = (c) => { chunks.push(Buffer.from(c)) }
    const answer = (): void => {
      if (s.head!.method === 'GET') {
        const body = Buffer.from('hello, ferry\n')
        s.respond({ status: 200, headers: ['content-type', 'text/plain; charset=utf-8'], bodyLength: body.length }, false)
        s.end(body)
      } else {
        s.respond({ status: 201, headers: ['location', '/items/1'], bodyLength: 0 }, true)
      }
    }
    if (s.head!.path === '/slow') {
      s.onError = () => slowReset() // never answered: the client gives up and resets the stream
      slowArrived()
      return
    }
    if (s.remoteEnded) answer()
    else s.onEnd = answer
  })
  await Promise.all([
    new Promise<void>((resolve) => client.once('ready', resolve)),
    new Promise<void>((resolve) => server.once('ready', resolve))
  ])
  take('hello')

  const get = client.request(GET_HEAD, true)
  await new Promise<void>((resolve) => { get.onEnd = resolve })
  take('get')

  const post = client.request(POST_HEAD, false)
  post.end(POST_BODY)
  await new Promise<void>((resolve) => { post.onEnd = resolve })
  take('post')

  await client.ping()
  take('ping')

  const arrived = new Promise<void>((resolve) => { slowArrived = resolve })
  const slow = client.request({ ...GET_HEAD, path: '/slow', requestId: 'r-3' }, true)
  await arrived
  take('slow')
  const reset = new Promise<void>((resolve) => { slowReset = resolve })
  slow.reset(ResetCode.CANCEL, 'client went away')
  await reset
  take('reset')

  const closed = Promise.all([
    new Promise<void>((resolve) => cs.once('close', () => resolve())),
    new Promise<void>((resolve) => ss.once('close', () => resolve()))
  ])
  server.goaway()
  await closed
  take('goaway')
  rmSync(dir, { recursive: true, force: true })
  return out
}

const STEPS: [string, string][] = [
  ['hello', 'Connection opening: preface and HELLO each way'],
  ['get', 'A GET on stream 1, answered with a 13-byte body'],
  ['post', 'A POST with a 7-byte body on stream 3, answered 201 without a body'],
  ['ping', 'PING and its ACK'],
  ['reset', 'The client cancels stream 5 (its HEADERS are not shown): RESET with code CANCEL'],
  ['goaway', 'Graceful shutdown: the server\'s GOAWAY (then both sides send FIN)']
]

/** The markdown section: one block per step and direction. */
export async function nativeDumps (): Promise<string> {
  const c = await capture()
  const parts: string[] = []
  for (const [step, title] of STEPS) {
    parts.push(`#### ${title}\n`)
    for (const [who, bytes, role] of [['client → server', c.client[step]!, 'client'], ['server → client', c.server[step]!, 'server']] as const) {
      if (bytes.length === 0) continue
      parts.push(`${who} (${bytes.length} bytes):\n\n\`\`\`\n${render(annotate(bytes, role))}\n\`\`\`\n`)
    }
  }
  return parts.join('\n')
}

// ── uwsgi ──────────────────────────────────────────────────────────────────

type UwsgiEncoder = (head: RequestHead, options?: { documentRoot?: string }) => Buffer

/** The uwsgi request encoder, from the package when it exports one, else from its source. */
async function uwsgiEncoder (): Promise<UwsgiEncoder | null> {
  const pkg = (await import('@ferry/protocol')) as Record<string, unknown>
  if (typeof pkg.encodeUwsgiRequest === 'function') return pkg.encodeUwsgiRequest as UwsgiEncoder
  try {
    const src = (await import(new URL('../packages/protocol/src/uwsgi.ts', import.meta.url).href)) as Record<string, unknown>
    return typeof src.encodeUwsgiRequest === 'function' ? src.encodeUwsgiRequest as UwsgiEncoder : null
  } catch {
    return null
  }
}

function annotateUwsgi (packet: Buffer, bodyLength: number): Line[] {
  const out: Line[] = []
  const size = packet.readUInt16LE(1)
  out.push({ offset: 0, bytes: packet.subarray(0, 1), depth: 0, note: `modifier1 = ${packet[0]}` })
  out.push({ offset: 1, bytes: packet.subarray(1, 3), depth: 0, note: `datasize = ${size} (u16 little-endian)` })
  out.push({ offset: 3, bytes: packet.subarray(3, 4), depth: 0, note: `modifier2 = ${packet[3]}` })
  let at = 4
  while (at < 4 + size) {
    const kl = packet.readUInt16LE(at)
    const key = packet.subarray(at + 2, at + 2 + kl).toString('latin1')
    const vAt = at + 2 + kl
    const vl = packet.readUInt16LE(vAt)
    const value = packet.subarray(vAt + 2, vAt + 2 + vl).toString('latin1')
    out.push({ offset: at, bytes: packet.subarray(at, at + 2), depth: 1, note: `key, ${kl} bytes: ${key}` })
    for (let i = 0; i < kl; i += 16) out.push({ offset: at + 2 + i, bytes: packet.subarray(at + 2 + i, at + 2 + Math.min(kl, i + 16)), depth: 2, note: '' })
    out.push({ offset: vAt, bytes: packet.subarray(vAt, vAt + 2), depth: 1, note: `value, ${vl} byte${vl === 1 ? '' : 's'}: ${JSON.stringify(value)}` })
    for (let i = 0; i < vl; i += 16) out.push({ offset: vAt + 2 + i, bytes: packet.subarray(vAt + 2 + i, vAt + 2 + Math.min(vl, i + 16)), depth: 2, note: '' })
    at = vAt + 2 + vl
  }
  if (bodyLength > 0) {
    const body = packet.subarray(at)
    for (let i = 0; i < body.length; i += 16) {
      out.push({ offset: at + i, bytes: body.subarray(i, i + 16), depth: 0, note: i === 0 ? `body, CONTENT_LENGTH = ${bodyLength} bytes: ${JSON.stringify(body.toString('latin1'))}` : '' })
    }
  }
  return out
}

const GOLDEN = new URL('../test/fixtures/nginx-golden/', import.meta.url)

/**
 * The uwsgi section's dumps: a GET and a POST captured from real nginx `uwsgi_pass`
 * (test/fixtures/nginx-golden) when those captures exist, else the GET and POST of the
 * native example as ferry's front encodes them.
 */
export async function uwsgiDumps (): Promise<string | null> {
  const captured = ['get-minimal.bin', 'post-form.bin'].map((f) => new URL(f, GOLDEN))
  if (captured.every((u) => existsSync(u))) {
    const manifest = JSON.parse(readFileSync(new URL('manifest.json', GOLDEN), 'utf8')) as { nginx?: string }
    return captured.map((u, i) => {
      const packet = readFileSync(u)
      const body = packet.length - 4 - packet.readUInt16LE(1)
      const name = u.pathname.split('/').pop()
      return `#### ${i === 0 ? 'GET' : 'POST'}: nginx ${manifest.nginx ?? ''} \`uwsgi_pass\`, captured (\`test/fixtures/nginx-golden/${name}\`, ${packet.length} bytes)\n\n\`\`\`\n${render(annotateUwsgi(packet, body))}\n\`\`\`\n`
    }).join('\n')
  }
  const encode = await uwsgiEncoder()
  if (encode === null) return null
  const get = encode({ ...GET_HEAD, headers: ['host', 'example.com', ...GET_HEAD.headers] })
  const post = Buffer.concat([encode({ ...POST_HEAD, headers: ['host', 'example.com', ...POST_HEAD.headers] }), POST_BODY])
  return [
    `#### GET: ferry's encoder (${get.length} bytes)\n\n\`\`\`\n${render(annotateUwsgi(get, 0))}\n\`\`\`\n`,
    `#### POST with a ${POST_BODY.length}-byte body: ferry's encoder (${post.length} bytes)\n\n\`\`\`\n${render(annotateUwsgi(post, POST_BODY.length))}\n\`\`\`\n`
  ].join('\n')
}

/** Replaces the text between `<!-- name:begin -->` and `<!-- name:end -->` in `doc`. */
export function fillRegion (doc: string, name: string, content: string): string {
  const begin = `<!-- ${name}:begin -->\n`
  const end = `<!-- ${name}:end -->`
  const a = doc.indexOf(begin)
  const b = doc.indexOf(end)
  if (a < 0 || b < a) throw new Error(`docs/protocol.md has no ${name} region`)
  return doc.slice(0, a + begin.length) + content + (content.endsWith('\n') ? '' : '\n') + doc.slice(b)
}

/** The text between the markers (what fillRegion wrote). */
export function readRegion (doc: string, name: string): string | null {
  const begin = `<!-- ${name}:begin -->\n`
  const a = doc.indexOf(begin)
  const b = doc.indexOf(`<!-- ${name}:end -->`)
  return a < 0 || b < a ? null : doc.slice(a + begin.length, b)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--write-doc')) {
    const file = new URL('../docs/protocol.md', import.meta.url)
    let doc = readFileSync(file, 'utf8')
    doc = fillRegion(doc, 'native-dumps', await nativeDumps())
    const u = await uwsgiDumps()
    if (u !== null) doc = fillRegion(doc, 'uwsgi-dumps', u)
    writeFileSync(file, doc)
    console.log(`docs/protocol.md: native dumps${u === null ? '' : ' and uwsgi dumps'} written`)
  } else if (process.argv.includes('--uwsgi')) {
    process.stdout.write((await uwsgiDumps()) ?? 'no uwsgi encoder in packages/protocol yet\n')
  } else {
    process.stdout.write(await nativeDumps())
  }
}
