/**
 * Codec micro-bench: ns per encode and per decode, and bytes on the wire, for the request
 * cases of fixtures.ts and the hello-world response, for every codec the tree has:
 *
 * - native: HEADERS frame (9-byte frame header + hand-written protobuf head) and the body as
 *   one DATA frame; decoded by a FrameDecoder (one per connection, reused) + decodeRequestHead;
 * - uwsgi: the vars block nginx would send + the raw body; the answer is HTTP/1.x text written
 *   and parsed by the protocol package (encodeHttp1ResponseHead, Http1ResponseParser);
 * - http1: request/response text, decoded by Node's llhttp (http1.ts);
 * - json: JSON.stringify + JSON.parse of the head object — the reference the native head
 *   must not be slower than.
 *
 * Encoders return writev pieces, as the tiers write them (bodies are never copied); decoders
 * are handed the whole wire image in one buffer.
 */
import {
  decodeRequestHead, decodeResponseHead, encodeHttp1ResponseHead, encodeRequestHead, encodeResponseHead,
  encodeUwsgiRequest, Flags, FrameDecoder, frameHeader, FrameType, Http1ResponseParser, type RequestHead,
  type ResponseHead, UwsgiDecoder
} from '@ferry/protocol'
import { HELLO_RESPONSE, REQUEST_CASES, type RequestCase } from './fixtures.ts'
import { encodeHttp1Request, encodeHttp1Response, Http1Parser } from './http1.ts'
import { consume, median, round, type TimingOptions, time } from './stats.ts'

type Pieces = Uint8Array[]

/** One codec as the bench drives it. */
export interface BenchCodec {
  name: string
  note: string
  encodeRequest (head: RequestHead, body: Buffer): Pieces
  /** `bodyLength` is only for codecs without framing of their own (the JSON reference). */
  decodeRequest (wire: Buffer, bodyLength: number): unknown
  encodeResponse (head: ResponseHead, body: Buffer): Pieces
  decodeResponse (wire: Buffer, bodyLength: number): unknown
}

function nativeCodec (): BenchCodec {
  let streamId = 1
  let last: unknown = null
  let bodyBytes = 0
  const onFrame = (kind: 'request' | 'response') => (type: number, _flags: number, id: number, payload: Buffer) => {
    if (type === FrameType.HEADERS) last = kind === 'request' ? decodeRequestHead(payload, id) : decodeResponseHead(payload, id)
    else if (type === FrameType.DATA) bodyBytes += payload.length
  }
  const reqDecoder = new FrameDecoder({ maxFramePayload: 65536 }, onFrame('request'))
  const resDecoder = new FrameDecoder({ maxFramePayload: 65536 }, onFrame('response'))
  const frames = (payload: Buffer, body: Buffer): Pieces => {
    const id = streamId
    streamId = streamId >= 0x7ffffff0 ? 1 : streamId + 2
    if (body.length === 0) return [frameHeader(payload.length, FrameType.HEADERS, Flags.END_STREAM, id), payload]
    return [
      frameHeader(payload.length, FrameType.HEADERS, 0, id), payload,
      frameHeader(body.length, FrameType.DATA, Flags.END_STREAM, id), body
    ]
  }
  return {
    name: 'native',
    note: 'ferry frames: 9-byte header + protobuf head, body as DATA frames',
    encodeRequest: (head, body) => frames(encodeRequestHead(head), body),
    decodeRequest: (wire) => {
      bodyBytes = 0
      reqDecoder.push(wire)
      return { head: last, bodyBytes }
    },
    encodeResponse: (head, body) => frames(encodeResponseHead(head), body),
    decodeResponse: (wire) => {
      bodyBytes = 0
      resDecoder.push(wire)
      return { head: last, bodyBytes }
    }
  }
}

function http1Codec (): BenchCodec {
  const reqParser = new Http1Parser('request')
  const resParser = new Http1Parser('response')
  return {
    name: 'http1',
    note: 'HTTP/1.1 text; decoded by Node\'s llhttp (the parser of node:http)',
    encodeRequest: (head, body) => (body.length === 0 ? [encodeHttp1Request(head)] : [encodeHttp1Request(head), body]),
    decodeRequest: (wire) => reqParser.parseRequest(wire),
    encodeResponse: (head, body) => (body.length === 0 ? [encodeHttp1Response(head)] : [encodeHttp1Response(head), body]),
    decodeResponse: (wire) => resParser.parseResponse(wire)
  }
}

function jsonCodec (): BenchCodec {
  return {
    name: 'json',
    note: 'reference: JSON.stringify + JSON.parse of the same head object (no framing, body not counted in time)',
    encodeRequest: (head, body) => (body.length === 0 ? [Buffer.from(JSON.stringify(head))] : [Buffer.from(JSON.stringify(head)), body]),
    decodeRequest: (wire, bodyLength) => JSON.parse(wire.toString('utf8', 0, wire.length - bodyLength)),
    encodeResponse: (head, body) => [Buffer.from(JSON.stringify(head)), body],
    decodeResponse: (wire, bodyLength) => JSON.parse(wire.toString('utf8', 0, wire.length - bodyLength))
  }
}

/** Every codec the tree provides, in report order. */
export function benchCodecs (): BenchCodec[] {
  return [nativeCodec(), uwsgiCodec(), http1Codec(), jsonCodec()]
}

function uwsgiCodec (): BenchCodec {
  let head: RequestHead | ResponseHead | null = null
  let bodyBytes = 0
  const handlers = {
    onHead: (h: RequestHead | ResponseHead) => { head = h },
    onBody: (chunk: Buffer) => { bodyBytes += chunk.length },
    onEnd: () => {}
  }
  return {
    name: 'uwsgi',
    note: 'uwsgi packet as nginx sends it (vars block) + raw body, answered in HTTP/1.x (the protocol package\'s writer and parser); one decoder per request, as uwsgi has one request per connection',
    encodeRequest: (h, body) => (body.length === 0 ? [encodeUwsgiRequest(h)] : [encodeUwsgiRequest(h), body]),
    decodeRequest: (wire) => {
      bodyBytes = 0
      new UwsgiDecoder(handlers).push(wire)
      return { head, bodyBytes }
    },
    encodeResponse: (h, body) => [encodeHttp1ResponseHead(h), body],
    decodeResponse: (wire) => {
      bodyBytes = 0
      new Http1ResponseParser(handlers).push(wire)
      return { head, bodyBytes }
    }
  }
}

export interface CodecRow {
  codec: string
  case: string
  label: string
  encodeNs: number
  decodeNs: number
  totalNs: number
  /** Everything on the wire except the body bytes: framing + head. */
  headBytes: number
  wireBytes: number
}

export interface CodecResults {
  date: string
  options: TimingOptions & { targetRoundMs: number }
  codecs: { name: string, note: string }[]
  rows: CodecRow[]
  /** Per hello-world exchange (minimal GET + hello response): both tiers' codec work. */
  perExchange: { codec: string, ns: number, wireBytes: number }[]
  checks: { name: string, pass: boolean, detail: string }[]
}

export interface CodecBenchOptions {
  rounds: number
  /** Fixed iterations per round; when absent they are calibrated to targetRoundMs. */
  iterations?: number
  targetRoundMs: number
  warmup?: number
}

function concat (pieces: Pieces): Buffer {
  return Buffer.concat(pieces)
}

/** Iterations that take about `targetMs` (after a first warm-up of at least 5 ms). */
function calibrate (fn: () => unknown, targetMs: number): number {
  let n = 16
  for (;;) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) consume(fn())
    const ms = Number(process.hrtime.bigint() - start) / 1e6
    if (ms >= 5 || n >= 1 << 24) return Math.max(16, Math.round(n * targetMs / Math.max(ms, 0.001)))
    n *= 4
  }
}

interface Figure {
  row: CodecRow
  op: 'encodeNs' | 'decodeNs'
  fn: () => unknown
  iterations: number
  samples: number[]
}

/**
 * Every figure is warmed up and calibrated first; then the rounds run interleaved (each
 * round times every figure once) and each figure's result is the median of its rounds, so
 * JIT warm-up and load from other processes do not land on whichever figure ran first.
 */
function measureAll (figures: Figure[], options: CodecBenchOptions): void {
  for (const f of figures) {
    const warm = options.warmup ?? 0
    for (let i = 0; i < warm; i++) consume(f.fn())
    f.iterations = options.iterations ?? calibrate(f.fn, options.targetRoundMs)
  }
  for (let r = 0; r < options.rounds; r++) {
    for (const f of figures) f.samples.push(time(f.fn, { iterations: f.iterations, rounds: 1, warmup: 0 }).nsPerOp)
  }
  for (const f of figures) f.row[f.op] = round(median(f.samples))
  for (const f of figures) {
    if (f.op === 'decodeNs') f.row.totalNs = round(f.row.encodeNs + f.row.decodeNs)
  }
}

function figuresFor (codec: BenchCodec, c: { name: string, label: string }, enc: () => Pieces, dec: (wire: Buffer, bodyLength: number) => unknown, bodyLength: number): Figure[] {
  const wire = concat(enc())
  dec(wire, bodyLength) // must not throw: a codec that cannot read its own output is a bug, not a figure
  const row: CodecRow = {
    codec: codec.name,
    case: c.name,
    label: c.label,
    encodeNs: 0,
    decodeNs: 0,
    totalNs: 0,
    headBytes: wire.length - bodyLength,
    wireBytes: wire.length
  }
  return [
    { row, op: 'encodeNs', fn: enc, iterations: 0, samples: [] },
    { row, op: 'decodeNs', fn: () => dec(wire, bodyLength), iterations: 0, samples: [] }
  ]
}

export function runCodecBench (options: CodecBenchOptions, cases: readonly RequestCase[] = REQUEST_CASES): CodecResults {
  const codecs = benchCodecs()
  const figures: Figure[] = []
  for (const c of cases) {
    for (const codec of codecs) {
      figures.push(...figuresFor(codec, c, () => codec.encodeRequest(c.head, c.body), codec.decodeRequest, c.body.length))
    }
  }
  const response = { name: 'hello-response', label: 'hello-world response' }
  for (const codec of codecs) {
    figures.push(...figuresFor(codec, response, () => codec.encodeResponse(HELLO_RESPONSE.head, HELLO_RESPONSE.body), codec.decodeResponse, HELLO_RESPONSE.body.length))
  }
  measureAll(figures, options)
  const rows = figures.filter((f) => f.op === 'encodeNs').map((f) => f.row)
  return {
    date: new Date().toISOString(),
    options: { iterations: options.iterations ?? 0, rounds: options.rounds, warmup: options.warmup ?? 0, targetRoundMs: options.targetRoundMs },
    codecs: codecs.map((c) => ({ name: c.name, note: c.note })),
    rows,
    perExchange: perExchange(rows, codecs),
    checks: checks(rows)
  }
}

function find (rows: readonly CodecRow[], codec: string, c: string): CodecRow | undefined {
  return rows.find((r) => r.codec === codec && r.case === c)
}

/** One hello-world exchange: request (minimal GET) and response each encoded once and decoded once. */
function perExchange (rows: readonly CodecRow[], codecs: readonly BenchCodec[]): CodecResults['perExchange'] {
  const out: CodecResults['perExchange'] = []
  for (const codec of codecs) {
    const req = find(rows, codec.name, 'minimal-get')
    const res = find(rows, codec.name, 'hello-response')
    if (req === undefined || res === undefined) continue
    out.push({ codec: codec.name, ns: round(req.totalNs + res.totalNs), wireBytes: req.wireBytes + res.wireBytes })
  }
  return out
}

/** The targets for the codec, evaluated on this run's figures. */
function checks (rows: readonly CodecRow[]): CodecResults['checks'] {
  const out: CodecResults['checks'] = []
  for (const c of REQUEST_CASES) {
    const native = find(rows, 'native', c.name)
    if (native === undefined) continue
    for (const other of ['http1', 'uwsgi']) {
      const o = find(rows, other, c.name)
      if (o === undefined) continue
      out.push({
        name: `native head smaller than ${other} (${c.label})`,
        pass: native.headBytes < o.headBytes,
        detail: `${native.headBytes} B vs ${o.headBytes} B`
      })
    }
  }
  const native = find(rows, 'native', 'browser-get')
  const json = find(rows, 'json', 'browser-get')
  if (native !== undefined && json !== undefined) {
    out.push({
      name: 'native encode+decode ≤ JSON stringify+parse (browser GET)',
      pass: native.totalNs <= json.totalNs,
      detail: `${native.totalNs} ns vs ${json.totalNs} ns (${round(native.totalNs / json.totalNs, 2)}×)`
    })
  }
  return out
}

export function codecTable (r: CodecResults): string {
  const lines = ['| request | codec | encode ns | decode ns | total ns | head+framing B | wire B |', '|---|---|--:|--:|--:|--:|--:|']
  for (const row of r.rows) {
    lines.push(`| ${row.label} | ${row.codec} | ${row.encodeNs} | ${row.decodeNs} | ${row.totalNs} | ${row.headBytes} | ${row.wireBytes} |`)
  }
  return lines.join('\n')
}

export function codecSummary (r: CodecResults): string {
  const lines: string[] = []
  for (const e of r.perExchange) lines.push(`- ${e.codec}: one hello-world exchange (request + response, encode + decode, both tiers) = ${e.ns} ns, ${e.wireBytes} B on the wire`)
  for (const c of r.checks) lines.push(`- ${c.pass ? 'PASS' : 'MISS'}: ${c.name} — ${c.detail}`)
  return lines.join('\n')
}
