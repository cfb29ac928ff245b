/**
 * Seeded fuzz of the native codec: random and mutated inputs (flipped bytes, truncations,
 * splices, duplications, random lengths, pure random) fed to a fresh FrameDecoder and the
 * head decoders, and to real Sessions (server and client role) over in-memory Duplexes.
 * Only FerryError may come out — never a TypeError/RangeError, never a crash, never a
 * FERRY_ERR_SESSION_INTERNAL (which is what a Session makes of any other exception) — and
 * memory stays bounded. A failure prints the seed and the input as hex: it replays exactly.
 */
import assert from 'node:assert/strict'
import { Duplex } from 'node:stream'
import { describe, type TestContext, test } from 'node:test'
import v8 from 'node:v8'
import vm from 'node:vm'
import {
  decodeRequestHead, decodeResponseHead, encodePing, encodeRequestHead, encodeResponseHead, encodeWindowUpdate,
  FerryError, Flags, FRAME_HEADER_SIZE, FrameDecoder, FrameType, PREFACE, Session, type Stream
} from '@ferry/protocol'
import {
  allFixtureBytes, frame, frameFixtures, getHead, goawayPayload, helloPayload, hex, resetPayload, XorShift32
} from '../helpers/fixtures-native.ts'

const SEED = 0x5eed_f00d
const DECODER_INPUTS = 100_000
const HEAD_INPUTS = 50_000
const SERVER_SESSION_INPUTS = 20_000
const CLIENT_SESSION_INPUTS = 10_000
const MEMORY_BOUND = 64 * 1024 * 1024

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

// ── corpus and mutators ────────────────────────────────────────────────────

/** Offsets of frame headers in a valid frame sequence (for length mutations). */
function headerOffsets (bytes: Buffer, start = 0): number[] {
  const out: number[] = []
  let at = start
  while (at + FRAME_HEADER_SIZE <= bytes.length) {
    out.push(at)
    at += FRAME_HEADER_SIZE + bytes.readUIntBE(at, 3)
  }
  return out
}

function mutate (rng: XorShift32, input: Buffer, corpus: readonly Buffer[], protect = 0): Buffer {
  let b = Buffer.from(input)
  const rounds = 1 + rng.int(3)
  for (let r = 0; r < rounds; r++) {
    const span = b.length - protect
    const pos = (): number => protect + (span > 0 ? rng.int(span) : 0)
    switch (rng.int(9)) {
      case 0: // flip bits
        if (span > 0) { const p = pos(); b[p] = b[p]! ^ (1 << rng.int(8)) }
        break
      case 1: // random byte
        if (span > 0) b[pos()] = rng.int(256)
        break
      case 2: // truncate
        b = b.subarray(0, pos())
        break
      case 3: { // splice: our head, another input's tail
        const other = rng.pick(corpus)
        b = Buffer.concat([b.subarray(0, pos()), other.subarray(rng.int(other.length + 1))])
        break
      }
      case 4: { // duplicate a range
        const a = pos()
        const len = rng.int(Math.min(64, b.length - a) + 1)
        b = Buffer.concat([b.subarray(0, a + len), b.subarray(a, a + len), b.subarray(a + len)])
        break
      }
      case 5: { // insert random bytes
        const a = pos()
        b = Buffer.concat([b.subarray(0, a), rng.bytes(1 + rng.int(16)), b.subarray(a)])
        break
      }
      case 6: { // random length in a frame header
        const hs = headerOffsets(b, protect)
        if (hs.length > 0) {
          const h = rng.pick(hs)
          const len = rng.pick([0, 1, 7, 8, 9, 1023, 1024, 1025, 65535, 65536, 65537, 0xffffff, rng.int(0x1000000), rng.int(300)])
          b.writeUIntBE(len, h, 3)
        }
        break
      }
      case 7: { // random type / flags / stream id in a frame header
        const hs = headerOffsets(b, protect)
        if (hs.length > 0) {
          const h = rng.pick(hs)
          const field = rng.int(3)
          if (field === 0) b[h + 3] = rng.int(9)
          else if (field === 1) b[h + 4] = rng.pick([0, 1, 2, 3, 4, 0x80, rng.int(256)])
          else b.writeUInt32BE(rng.pick([0, 1, 2, 3, 5, 7, 0x7fffffff, 0x80000001, rng.next()]) >>> 0, h + 5)
        }
        break
      }
      case 8: // drop a range
        if (span > 1) {
          const a = pos()
          b = Buffer.concat([b.subarray(0, a), b.subarray(a + 1 + rng.int(Math.min(32, b.length - a)))])
        }
        break
    }
  }
  return b
}

/** A plausible frame with a valid type, mostly valid flags/stream, random payload. */
function randomFrame (rng: XorShift32): Buffer {
  const type = rng.int(7)
  const flags = rng.int(8) === 0 ? rng.int(256) : rng.int(3)
  const stream = rng.int(8) === 0 ? rng.next() & 0x7fffffff : rng.pick([0, 1, 3, 5, 2])
  const len = type === FrameType.PING ? 8 : type === FrameType.WINDOW_UPDATE ? 4 : rng.int(64)
  return frame(type, flags, stream, rng.bytes(len))
}

function splitRandom (rng: XorShift32, b: Buffer): Buffer[] {
  const n = rng.int(4)
  if (n === 0 || b.length < 2) return [b]
  const cuts = new Set<number>()
  for (let i = 0; i < n; i++) cuts.add(1 + rng.int(b.length - 1))
  const sorted = [...cuts].sort((x, y) => x - y)
  const out: Buffer[] = []
  let prev = 0
  for (const c of sorted) { out.push(b.subarray(prev, c)); prev = c }
  out.push(b.subarray(prev))
  return out
}

function failure (what: string, i: number, input: Buffer, err: unknown): Error {
  return new Error(`${what} #${i} (seed 0x${SEED.toString(16)}) threw a non-FerryError: ${String(err)}\ninput: ${hex(input).slice(0, 2000)}`, { cause: err })
}

// ── decoder-level fuzz ─────────────────────────────────────────────────────

describe(`native codec fuzz (seed 0x${SEED.toString(16)})`, () => {
  test(`${DECODER_INPUTS} random and mutated frame streams into FrameDecoder + head decoders`, () => {
    const rng = new XorShift32(SEED)
    const corpus = [...frameFixtures().map((f) => f.bytes), allFixtureBytes().bytes]
    const before = memory()
    const outcomes = new Map<string, number>()
    for (let i = 0; i < DECODER_INPUTS; i++) {
      const kind = rng.int(10)
      let input: Buffer
      if (kind === 0) input = rng.bytes(rng.int(300))
      else if (kind === 1) input = Buffer.concat(Array.from({ length: 1 + rng.int(6) }, () => randomFrame(rng)))
      else input = mutate(rng, rng.pick(corpus), corpus)
      const max = rng.int(4) === 0 ? 1024 : 65536
      let outcome = 'ok'
      try {
        const d = new FrameDecoder({ maxFramePayload: max }, (type, _flags, streamId, payload) => {
          if (type !== FrameType.HEADERS) return
          for (const decode of [decodeRequestHead, decodeResponseHead]) {
            try {
              decode(payload, streamId)
            } catch (err) {
              if (!(err instanceof FerryError)) throw failure('head', i, input, err)
              assert.equal(err.code, 'FERRY_ERR_HEAD_INVALID')
            }
          }
        })
        for (const c of splitRandom(rng, input)) d.push(c)
        if (!d.idle) outcome = 'waiting'
      } catch (err) {
        if (!(err instanceof FerryError)) throw failure('frame stream', i, input, err)
        assert.equal(typeof err.statusCode, 'number')
        outcome = err.code
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
    }
    const grown = memory() - before
    assert.ok(grown < MEMORY_BOUND, `heap grew by ${grown} bytes`)
    // the fuzzer reaches every framing error and plenty of clean decodes
    for (const code of ['ok', 'waiting', 'FERRY_ERR_FRAME_TOO_LARGE', 'FERRY_ERR_FRAME_UNKNOWN_TYPE', 'FERRY_ERR_FRAME_BAD_STREAM', 'FERRY_ERR_FRAME_BAD_LENGTH', 'FERRY_ERR_FRAME_BAD_FLAGS']) {
      assert.ok((outcomes.get(code) ?? 0) > 100, `${code}: ${outcomes.get(code)}`)
    }
  })

  test(`${HEAD_INPUTS} mutated and random head payloads into the head decoders`, () => {
    const rng = new XorShift32(SEED ^ 0x1234)
    const heads = [
      encodeRequestHead(getHead('/a/b?c=d', { headers: ['accept', '*/*', 'x-custom', 'v', 'set-cookie', 'a', 'set-cookie', 'b'], requestId: 'r', remoteAddress: '::1', remotePort: 1, bodyLength: -1 })),
      encodeRequestHead(getHead('/', { method: 'PURGE', serverName: 'x', serverPort: 80 })),
      encodeResponseHead({ status: 200, headers: ['content-type', 'text/plain', 'x-long', 'v'.repeat(300)], bodyLength: 5 }),
      encodeResponseHead({ status: 404, headers: [], bodyLength: -1 })
    ]
    let ok = 0
    let invalid = 0
    for (let i = 0; i < HEAD_INPUTS; i++) {
      const input = rng.int(8) === 0 ? rng.bytes(rng.int(80)) : mutate(rng, rng.pick(heads), heads)
      for (const decode of [decodeRequestHead, decodeResponseHead]) {
        try {
          decode(input, 1)
          ok++
        } catch (err) {
          if (!(err instanceof FerryError)) throw failure('head', i, input, err)
          assert.equal(err.code, 'FERRY_ERR_HEAD_INVALID')
          invalid++
        }
      }
    }
    assert.ok(ok > 1000 && invalid > 1000, `ok ${ok}, invalid ${invalid}`)
  })

  // ── session-level fuzz ───────────────────────────────────────────────────

  test(`${SERVER_SESSION_INPUTS} mutated connections into a server Session`, async (t) => {
    const rng = new XorShift32(SEED ^ 0xabcd)
    const hello = frame(FrameType.HELLO, 0, 0, helloPayload({ initialWindow: 2048, connectionWindow: 4096 }))
    const opening = Buffer.concat([PREFACE, hello])
    const bodies = [
      Buffer.concat([
        frame(FrameType.HEADERS, 0, 1, encodeRequestHead(getHead('/up', { method: 'POST', bodyLength: 5 }))),
        frame(FrameType.DATA, 0, 1, Buffer.from('he')),
        frame(FrameType.DATA, Flags.END_STREAM, 1, Buffer.from('llo'))
      ]),
      Buffer.concat([
        frame(FrameType.HEADERS, Flags.END_STREAM, 1, encodeRequestHead(getHead('/a'))),
        frame(FrameType.HEADERS, 0, 3, encodeRequestHead(getHead('/b', { bodyLength: -1 }))),
        frame(FrameType.DATA, 0, 3, Buffer.alloc(1500, 1)),
        encodeWindowUpdate(1, 100),
        encodeWindowUpdate(0, 100),
        frame(FrameType.RESET, 0, 3, resetPayload(5)),
        encodePing(Buffer.alloc(8, 7), false),
        frame(FrameType.HEADERS, Flags.END_STREAM, 5, encodeRequestHead(getHead('/c')))
      ]),
      Buffer.concat([
        frame(FrameType.HEADERS, Flags.END_STREAM, 1, encodeRequestHead(getHead('/a'))),
        frame(FrameType.GOAWAY, 0, 0, goawayPayload(0, 0, 'bye'))
      ])
    ]
    const corpus = bodies.map((b) => Buffer.concat([opening, b]))
    const res = await fuzzSessions(rng, SERVER_SESSION_INPUTS, 'server', (r) => {
      const base = r.pick(corpus)
      // mostly keep the preface and HELLO intact so the fuzz reaches streams
      return r.int(5) === 0 ? mutate(r, base, corpus) : mutate(r, base, corpus, opening.length)
    })
    report(t, res)
  })

  test(`${CLIENT_SESSION_INPUTS} mutated responses into a client Session`, async (t) => {
    const rng = new XorShift32(SEED ^ 0x7777)
    const hello = frame(FrameType.HELLO, 0, 0, helloPayload({ initialWindow: 2048 }))
    const responses = [
      Buffer.concat([
        frame(FrameType.HEADERS, 0, 1, encodeResponseHead({ status: 200, headers: ['content-type', 'text/plain'], bodyLength: 5 })),
        frame(FrameType.DATA, Flags.END_STREAM, 1, Buffer.from('hello')),
        frame(FrameType.HEADERS, Flags.END_STREAM, 3, encodeResponseHead({ status: 204, headers: [], bodyLength: 0 }))
      ]),
      Buffer.concat([
        encodeWindowUpdate(1, 1000),
        frame(FrameType.HEADERS, 0, 3, encodeResponseHead({ status: 200, headers: [], bodyLength: -1 })),
        frame(FrameType.DATA, 0, 3, Buffer.alloc(1000, 2)),
        frame(FrameType.RESET, 0, 1, resetPayload(8, 'overloaded')),
        encodePing(Buffer.alloc(8), true),
        frame(FrameType.GOAWAY, 0, 0, goawayPayload(3, 0))
      ])
    ]
    const res = await fuzzSessions(rng, CLIENT_SESSION_INPUTS, 'client', (r) => Buffer.concat([hello, mutate(r, r.pick(responses), responses)]), hello.length)
    report(t, res)
  })
})

function report (t: TestContext, r: { codes: Map<string, number>, streams: number, responses: number, grown: number }): void {
  t.diagnostic(`streams ${r.streams}, responses ${r.responses}, heap growth ${(r.grown / 1048576).toFixed(1)} MiB`)
  t.diagnostic([...r.codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', '))
}

function memory (): number {
  gc()
  return process.memoryUsage().heapUsed
}

/** A Duplex whose writes go nowhere: the Session's own frames are not under test here. */
function sink (): Duplex {
  return new Duplex({ read () {}, write (_c, _e, cb) { cb() } })
}

async function fuzzSessions (
  rng: XorShift32,
  count: number,
  role: 'client' | 'server',
  makeInput: (r: XorShift32) => Buffer,
  helloLength = 0
): Promise<{ codes: Map<string, number>, streams: number, responses: number, grown: number }> {
  const before = memory()
  const codes = new Map<string, number>()
  const failures: Error[] = []
  let streams = 0
  let responses = 0
  const BATCH = 50
  const tick = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve))
  for (let i = 0; i < count; i += BATCH) {
    const live: { socket: Duplex, session: Session, input: Buffer, chunks: Buffer[], n: number }[] = []
    for (let j = i; j < Math.min(count, i + BATCH); j++) {
      const input = makeInput(rng)
      const socket = sink()
      const chunks = splitRandom(rng, role === 'client' ? input.subarray(helloLength) : input)
      const session = new Session(socket, {
        role,
        limits: { initialWindow: 2048, connectionWindow: 4096, maxConcurrentStreams: 4 },
        initialData: role === 'server' ? chunks.shift() : undefined
      })
      const record = (err: unknown): void => {
        if (!(err instanceof FerryError) || err.code === 'FERRY_ERR_SESSION_INTERNAL') failures.push(failure(`${role} session`, j, input, err))
        else codes.set(err.code, (codes.get(err.code) ?? 0) + 1)
      }
      session.on('error', record)
      session.on('streamError', record)
      session.on('stream', (s: Stream) => {
        streams++
        s.onError = record
        s.onEnd = () => {
          s.respond({ status: 200, headers: ['x-a', 'b'], bodyLength: -1 }, false)
          s.write(Buffer.alloc(100))
          s.end()
        }
      })
      if (role === 'client') socket.push(input.subarray(0, helloLength))
      live.push({ socket, session, input, chunks, n: j })
    }
    // initialData (server) is taken on the next tick, the HELLO (client) on the push: later
    // chunks go in after it, as they would arrive from a real socket
    await tick()
    for (const l of live) {
      if (role === 'client') {
        assert.equal(l.session.ready, true)
        for (const end of [true, false]) {
          const s = l.session.request(getHead('/x', { bodyLength: end ? 0 : -1 }), end)
          s.onError = (err) => { if (!(err instanceof FerryError)) failures.push(failure('client stream', l.n, l.input, err)) }
          s.onResponse = () => { responses++ }
          s.onData = () => {}
          if (!end) s.end(Buffer.alloc(10))
        }
      }
      for (const c of l.chunks) l.socket.push(c)
    }
    await tick()
    await tick()
    for (const l of live) l.socket.destroy()
    await tick()
    for (const l of live) assert.equal(l.session.closed, true, `${role} session #${l.n} closed after its socket`)
    if (failures.length > 0) throw failures[0]
  }
  // A Session that closes on an error keeps a 1 s fallback timer (socket.destroy if the peer
  // never closes) that holds it until it fires: measure after those timers, so that only a
  // real leak counts.
  await new Promise((resolve) => setTimeout(resolve, 1200))
  const grown = memory() - before
  assert.ok(grown < MEMORY_BOUND, `heap grew by ${grown} bytes`)
  assert.ok(codes.size >= 8, `the fuzz reached several error codes: ${[...codes.keys()].join(', ')}`)
  assert.ok(role === 'server' ? streams > count / 4 : responses > count / 4, `streams ${streams}, responses ${responses}`)
  return { codes, streams, responses, grown }
}
