/**
 * Fixtures for the native codec tests: valid frames built by the real encoders, a decoder
 * harness that records frames as copies, a small seeded PRNG for the fuzzer, and a raw peer
 * (a plain socket that speaks frames by hand) for session tests.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import {
  emptyRequestHead, encodePing, encodeRequestHead, encodeResponseHead, encodeSmallFrame, encodeWindowUpdate,
  Flags, FrameDecoder, frameHeader, FrameType, PREFACE, PROTOCOL_VERSION, type Limits, type RequestHead,
  type ResponseHead, Session, type SessionOptions
} from '@ferry/protocol'
import { ferry } from '../../packages/protocol/gen/ferry.js'
import { cutAt } from './chunks.ts'

export interface DecodedFrame {
  type: number
  flags: number
  streamId: number
  /** Payload as hex (a copy, safe to keep). */
  payload: string
}

export interface FrameFixture {
  name: string
  bytes: Buffer
  frames: DecodedFrame[]
}

export function hex (b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

export function unhex (s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex')
}

/** One whole frame as a single Buffer. */
export function frame (type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  return Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload])
}

/** HELLO fields for the shared-secret handshake (16-byte nonce, HMAC proof). */
export interface HelloAuth { nonce?: Uint8Array, proof?: Uint8Array }

export function helloPayload (limits: Partial<Limits> = {}, auth: HelloAuth = {}, version = PROTOCOL_VERSION): Uint8Array {
  return ferry.Hello.encode({ version, limits, agent: 'test', ...auth }).finish()
}

export function resetPayload (code: number, message = ''): Uint8Array {
  return ferry.Reset.encode({ code, message }).finish()
}

export function goawayPayload (lastStreamId: number, code: number, message = ''): Uint8Array {
  return ferry.GoAway.encode({ lastStreamId, code, message }).finish()
}

export function getHead (path = '/', extra: Partial<RequestHead> = {}): RequestHead {
  return { ...emptyRequestHead(), path, authority: 'example.test', headers: ['accept', '*/*'], ...extra }
}

export const OK_RESPONSE: ResponseHead = { status: 200, headers: ['content-type', 'text/plain'], bodyLength: 5 }

function fixture (name: string, pieces: { type: number, flags: number, streamId: number, payload: Uint8Array }[]): FrameFixture {
  const bytes = Buffer.concat(pieces.map((p) => frame(p.type, p.flags, p.streamId, p.payload)))
  return {
    name,
    bytes,
    frames: pieces.map((p) => ({ type: p.type, flags: p.flags, streamId: p.streamId, payload: hex(p.payload) }))
  }
}

function f (type: number, flags: number, streamId: number, payload: Uint8Array = new Uint8Array(0)) {
  return { type, flags, streamId, payload }
}

/** Valid frame sequences, each as it would appear on the wire after the preface. */
export function frameFixtures (): FrameFixture[] {
  const body = Buffer.from('hello')
  const big = Buffer.alloc(3000, 0x61)
  return [
    fixture('hello', [f(FrameType.HELLO, 0, 0, helloPayload({ maxFramePayload: 65536 }))]),
    fixture('hello ack', [f(FrameType.HELLO, Flags.ACK, 0, helloPayload())]),
    fixture('get request', [f(FrameType.HEADERS, Flags.END_STREAM, 1, encodeRequestHead(getHead('/a?b=1')))]),
    fixture('post request with body', [
      f(FrameType.HEADERS, 0, 3, encodeRequestHead(getHead('/upload', { method: 'POST', bodyLength: 5 }))),
      f(FrameType.DATA, Flags.END_STREAM, 3, body)
    ]),
    fixture('response with streamed body', [
      f(FrameType.HEADERS, 0, 5, encodeResponseHead({ status: 200, headers: [], bodyLength: -1 })),
      f(FrameType.DATA, 0, 5, big),
      f(FrameType.DATA, 0, 5, body),
      f(FrameType.DATA, Flags.END_STREAM, 5)
    ]),
    fixture('ping and ack', [
      f(FrameType.PING, 0, 0, Buffer.from('0102030405060708', 'hex')),
      f(FrameType.PING, Flags.ACK, 0, Buffer.from('0102030405060708', 'hex'))
    ]),
    fixture('window updates', [
      f(FrameType.WINDOW_UPDATE, 0, 0, encodeWindowUpdate(0, 65536).subarray(9)),
      f(FrameType.WINDOW_UPDATE, 0, 7, encodeWindowUpdate(7, 1).subarray(9))
    ]),
    fixture('reset', [f(FrameType.RESET, 0, 9, resetPayload(5, 'client went away'))]),
    fixture('goaway', [f(FrameType.GOAWAY, 0, 0, goawayPayload(9, 0, 'shutdown'))]),
    fixture('empty frames', [f(FrameType.DATA, 0, 1), f(FrameType.RESET, 0, 1), f(FrameType.GOAWAY, 0, 0)]),
    fixture('max stream id', [f(FrameType.DATA, Flags.END_STREAM, 0x7fffffff, body)])
  ]
}

/** Every fixture's frames back to back: one long valid byte sequence. */
export function allFixtureBytes (): { bytes: Buffer, frames: DecodedFrame[] } {
  const fx = frameFixtures()
  return { bytes: Buffer.concat(fx.map((x) => x.bytes)), frames: fx.flatMap((x) => x.frames) }
}

/** Feeds chunks to a fresh FrameDecoder and returns copies of the frames it emitted. */
export function decodeChunks (chunks: Buffer[], maxFramePayload = 65536): { frames: DecodedFrame[], decoder: FrameDecoder } {
  const frames: DecodedFrame[] = []
  const decoder = new FrameDecoder({ maxFramePayload }, (type, flags, streamId, payload) => {
    frames.push({ type, flags, streamId, payload: hex(payload) })
  })
  for (const c of chunks) decoder.push(c)
  return { frames, decoder }
}

/** Splits `bytes` at the given offsets (any order, duplicates and out-of-range ones ignored). */
export function splitAt (bytes: Buffer, points: number[]): Buffer[] {
  return cutAt(bytes, [...new Set(points.filter((p) => p > 0 && p < bytes.length))].sort((a, b) => a - b))
}

/** xorshift32: a tiny deterministic PRNG so a fuzz failure replays from its seed. */
export class XorShift32 {
  #s: number
  constructor (seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9
  }

  next (): number {
    let x = this.#s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#s = x >>> 0
    return this.#s
  }

  /** Integer in [0, n). */
  int (n: number): number {
    return this.next() % n
  }

  bytes (n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.next() & 0xff
    return b
  }

  pick<T> (a: readonly T[]): T {
    return a[this.int(a.length)]!
  }
}

// ── sockets ────────────────────────────────────────────────────────────────

/** A fresh temp dir with a unix socket path in it, removed after the test. */
export function tempSocketPath (t: TestContext, name = 'ferry.sock'): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, name)
}

/** A connected pair of real sockets over a temp unix socket: [client end, server end]. */
export async function socketPair (t: TestContext): Promise<[net.Socket, net.Socket]> {
  const path = tempSocketPath(t)
  const server = net.createServer()
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve))
  await new Promise<void>((resolve) => server.listen(path, resolve))
  const client = net.connect(path)
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve)
    client.once('error', reject)
  })
  const serverSide = await accepted
  server.close()
  t.after(() => {
    client.destroy()
    serverSide.destroy()
  })
  return [client, serverSide]
}

export function once<T = void> (emitter: NodeJS.EventEmitter, event: string): Promise<T> {
  return new Promise<T>((resolve) => emitter.once(event, (v: T) => resolve(v)))
}

/** Client and server Sessions over a real unix socket pair, both past HELLO. */
export async function sessionPair (
  t: TestContext,
  server: Omit<SessionOptions, 'role'> = {},
  client: Omit<SessionOptions, 'role'> = {}
): Promise<{ client: Session, server: Session, clientSocket: net.Socket, serverSocket: net.Socket }> {
  const [cs, ss] = await socketPair(t)
  const s = new Session(ss, { ...server, role: 'server' })
  const c = new Session(cs, { ...client, role: 'client' })
  s.on('error', () => {})
  c.on('error', () => {})
  t.after(() => {
    c.destroy()
    s.destroy()
  })
  await Promise.all([s.ready ? undefined : once(s, 'ready'), c.ready ? undefined : once(c, 'ready')])
  return { client: c, server: s, clientSocket: cs, serverSocket: ss }
}

/**
 * The other end of a Session, speaking frames by hand over a real socket: records every
 * frame the Session sends, and whether the socket ended with FIN ('end') or was reset.
 */
export class RawPeer {
  readonly socket: net.Socket
  readonly frames: DecodedFrame[] = []
  ended = false
  closed = false
  #waiters: { pred: (f: DecodedFrame) => boolean, resolve: (f: DecodedFrame) => void }[] = []
  #closeWaiters: (() => void)[] = []

  /** Bytes of the client's preface this (server-role) peer has yet to see. */
  #prefaceLeft: number
  /** The preface bytes this peer received (server role), for assertions. */
  readonly preface: number[] = []

  /** `role` is the role this raw peer plays: a 'server' peer first reads the client's preface. */
  constructor (socket: net.Socket, role: 'client' | 'server' = 'client', maxFramePayload = 16777215) {
    this.socket = socket
    this.#prefaceLeft = role === 'server' ? PREFACE.length : 0
    const decoder = new FrameDecoder({ maxFramePayload }, (type, flags, streamId, payload) => {
      const fr = { type, flags, streamId, payload: hex(payload) }
      this.frames.push(fr)
      this.#waiters = this.#waiters.filter((w) => {
        if (!w.pred(fr)) return true
        w.resolve(fr)
        return false
      })
    })
    socket.on('data', (c: Buffer) => {
      if (this.#prefaceLeft > 0) {
        const n = Math.min(this.#prefaceLeft, c.length)
        this.preface.push(...c.subarray(0, n))
        this.#prefaceLeft -= n
        c = c.subarray(n)
      }
      if (c.length > 0) decoder.push(c)
    })
    socket.on('end', () => { this.ended = true })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      for (const w of this.#closeWaiters) w()
    })
  }

  send (...pieces: Uint8Array[]): void {
    this.socket.write(Buffer.concat(pieces))
  }

  sendFrame (type: number, flags: number, streamId: number, payload?: Uint8Array): void {
    this.send(frame(type, flags, streamId, payload))
  }

  /** Client role: preface + HELLO. Server role: HELLO only. */
  hello (role: 'client' | 'server', limits: Partial<Limits> = {}, auth: HelloAuth = {}): void {
    const h = encodeSmallFrame(FrameType.HELLO, 0, 0, helloPayload(limits, auth))
    this.send(...(role === 'client' ? [PREFACE, h] : [h]))
  }

  ping (opaque: Buffer): void {
    this.send(encodePing(opaque, false))
  }

  /** Resolves with the first frame (already received or future) matching pred. */
  waitFrame (pred: (f: DecodedFrame) => boolean): Promise<DecodedFrame> {
    const have = this.frames.find(pred)
    if (have !== undefined) return Promise.resolve(have)
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }))
  }

  waitType (type: number, streamId?: number): Promise<DecodedFrame> {
    return this.waitFrame((f) => f.type === type && (streamId === undefined || f.streamId === streamId))
  }

  waitClose (): Promise<void> {
    if (this.closed) return Promise.resolve()
    return new Promise((resolve) => this.#closeWaiters.push(resolve))
  }
}

/** A Session on one end of a socket pair and a RawPeer on the other. */
export async function sessionWithRawPeer (
  t: TestContext,
  role: 'client' | 'server',
  options: Omit<SessionOptions, 'role'> = {}
): Promise<{ session: Session, peer: RawPeer, errors: Error[], streamErrors: Error[] }> {
  const [cs, ss] = await socketPair(t)
  const session = new Session(role === 'server' ? ss : cs, { ...options, role })
  const peer = new RawPeer(role === 'server' ? cs : ss, role === 'server' ? 'client' : 'server')
  const errors: Error[] = []
  const streamErrors: Error[] = []
  session.on('error', (e: Error) => errors.push(e))
  session.on('streamError', (e: Error) => streamErrors.push(e))
  t.after(() => session.destroy())
  return { session, peer, errors, streamErrors }
}

export function decodeGoaway (payloadHex: string): { lastStreamId: number, code: number, message: string } {
  const m = ferry.GoAway.decode(unhex(payloadHex))
  return { lastStreamId: m.lastStreamId ?? 0, code: m.code ?? 0, message: m.message ?? '' }
}

export function decodeReset (payloadHex: string): { code: number, message: string } {
  const m = ferry.Reset.decode(unhex(payloadHex))
  return { code: m.code ?? 0, message: m.message ?? '' }
}

export function decodeHello (payloadHex: string): ferry.Hello {
  return ferry.Hello.decode(unhex(payloadHex))
}
