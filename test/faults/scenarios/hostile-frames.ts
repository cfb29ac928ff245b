/**
 * Scenario 7 — hostile frames: seeded random and mutated ferry-native and uwsgi inputs on
 * many short connections against a live app-server's unix and tcp listeners, while a front
 * sends good requests to the same node over its own connections. Each hostile connection
 * writes its input, half-closes, and waits for the node to close it. Pass: the node stays
 * up, its memory stays bounded, every hostile connection is closed by the node, rejected
 * input is logged with a FERRY_ERR_ code, and the good requests all succeed.
 */
import net from 'node:net'
import { join } from 'node:path'
import { FrameType, PREFACE } from '@ferry/protocol'
import { frameFixtures, frame, helloPayload, XorShift32 } from '../../helpers/fixtures-native.ts'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, describeFailures, Load, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export const SEED = 0x0bad_f00d

export interface HostileScale {
  /** Hostile connections open at once. */
  parallel: number
  durationMs: number
  normalConnections: number
}

export const HOSTILE_SMALL: HostileScale = { parallel: 8, durationMs: 3000, normalConnections: 4 }
export const HOSTILE_FULL: HostileScale = { parallel: 16, durationMs: 20000, normalConnections: 8 }

function uwsgiPacket (vars: Array<[string, string]>): Buffer {
  const parts: Buffer[] = []
  for (const [k, v] of vars) {
    const kb = Buffer.from(k)
    const vb = Buffer.from(v)
    const h = Buffer.alloc(2)
    h.writeUInt16LE(kb.length)
    const hv = Buffer.alloc(2)
    hv.writeUInt16LE(vb.length)
    parts.push(h, kb, hv, vb)
  }
  const body = Buffer.concat(parts)
  const head = Buffer.from([0, 0, 0, 0])
  head.writeUInt16LE(body.length, 1)
  return Buffer.concat([head, body])
}

const UWSGI_GET = uwsgiPacket([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/hello'], ['PATH_INFO', '/hello'], ['QUERY_STRING', ''], ['SERVER_PROTOCOL', 'HTTP/1.1'], ['SERVER_NAME', 'x'], ['SERVER_PORT', '80'], ['REMOTE_ADDR', '127.0.0.1'], ['HTTP_HOST', 'x']])
const NATIVE_START = Buffer.concat([PREFACE, frame(FrameType.HELLO, 0, 0, helloPayload({ maxFramePayload: 65536 }))])

function mutate (rng: XorShift32, input: Buffer, protect: number): Buffer {
  let b = Buffer.from(input)
  const rounds = 1 + rng.int(4)
  for (let r = 0; r < rounds; r++) {
    const span = b.length - protect
    if (span <= 0) break
    const at = protect + rng.int(span)
    switch (rng.int(6)) {
      case 0: b[at] = b[at]! ^ (1 << rng.int(8)); break
      case 1: b[at] = rng.int(256); break
      case 2: b = b.subarray(0, at); break
      case 3: b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(32)), b.subarray(at)]); break
      case 4: b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rng.int(16))]); break
      default: { // a length field (native frame header or uwsgi size) set to something odd
        const v = rng.pick([0, 1, 0xff, 0xffff, 0xfffff, rng.next() & 0xffffff])
        if (at + 3 <= b.length) b.writeUIntBE(v, at, 3)
      }
    }
  }
  return b
}

/** One hostile input: kind, and the bytes. */
export function hostileInput (rng: XorShift32, corpus: Buffer[]): { kind: string, bytes: Buffer } {
  switch (rng.int(5)) {
    case 0: return { kind: 'native-mutated', bytes: Buffer.concat([NATIVE_START, mutate(rng, rng.pick(corpus), 0)]) }
    case 1: return { kind: 'native-random-frames', bytes: Buffer.concat([NATIVE_START, ...Array.from({ length: 1 + rng.int(6) }, () => frame(rng.int(10), rng.int(4), rng.pick([0, 1, 2, 3, rng.next() & 0x7fffffff]), rng.bytes(rng.int(48))))]) }
    case 2: return { kind: 'native-mutated-preface', bytes: Buffer.concat([mutate(rng, NATIVE_START, 1), rng.pick(corpus)]) }
    case 3: return { kind: 'uwsgi-mutated', bytes: mutate(rng, UWSGI_GET, 0) }
    default: return { kind: 'random', bytes: rng.bytes(1 + rng.int(600)) }
  }
}

interface Attack {
  kind: string
  /** The input as hex (kept for the ones the node did not close, to replay). */
  hex: string
  closedByServer: boolean
  answered: boolean
}

function attack (address: { path?: string, port?: number }, bytes: Buffer, kind: string): Promise<Attack> {
  return new Promise((resolve) => {
    const s = address.path !== undefined ? net.connect(address.path) : net.connect(address.port!, '127.0.0.1')
    let got = 0
    let done = false
    const finish = (closedByServer: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      s.destroy()
      resolve({ kind, hex: closedByServer ? '' : bytes.toString('hex'), closedByServer, answered: got > 0 })
    }
    const timer = setTimeout(() => finish(false), 5000)
    s.on('data', (d: Buffer) => { got += d.length })
    s.on('error', () => finish(true)) // ECONNRESET / EPIPE: the node closed it
    s.on('close', () => finish(true))
    s.on('end', () => s.end())
    s.on('connect', () => s.end(bytes))
  })
}

/** Inputs whose error code is known in advance. */
const EXACT: Array<[string, Buffer]> = [
  ['FERRY_ERR_PREFACE', Buffer.from('89464552525900000000000000000000', 'hex')],
  ['FERRY_ERR_UWSGI_MODIFIER', Buffer.from('63050000', 'hex')],
  ['FERRY_ERR_FRAME_UNKNOWN_TYPE', Buffer.concat([NATIVE_START, frame(0x3f, 0, 1, Buffer.alloc(4))])],
  ['FERRY_ERR_UWSGI_TRUNCATED', UWSGI_GET.subarray(0, 20)]
]

export interface ExactCheck {
  code: string
  listener: 'unix' | 'tcp'
  closed: boolean
  logged: boolean
}

export interface HostileResult {
  exact: ExactCheck[]
  report: ScenarioReport
  failedDetail: string
  attacks: number
  byKind: Record<string, number>
  notClosed: Attack[]
  codes: Record<string, number>
  /** Warn/error lines of the node without a FERRY_ERR_ code. */
  uncoded: string[]
  alive: boolean
  appPeakMiB: number
  normalSent: number
}

export async function hostileFrames (scale: HostileScale): Promise<HostileResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f7-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const node = await startNode(c, dir, 'n1', ['--threads', '2', '--listen', 'tcp://127.0.0.1:0'])
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const tcpPort = Number(node.addresses.find((a) => a.startsWith('tcp'))!.split(':').pop())
    const targets = [{ path: join(dir, 'n1.sock') }, { port: tcpPort }]
    const load = new Load(baseUrl(front), scale.normalConnections, () => ({ method: 'GET', path: '/hello' }))
    const rng = new XorShift32(SEED)
    const corpus = frameFixtures().map((f) => f.bytes)
    const attacks: Attack[] = []
    const end = performance.now() + scale.durationMs
    await Promise.all(Array.from({ length: scale.parallel }, async (_, k) => {
      while (performance.now() < end) {
        const { kind, bytes } = hostileInput(rng, corpus)
        attacks.push(await attack(targets[k % 2]!, bytes, kind))
      }
    }))
    const res = await load.stop()
    // Known-bad inputs one by one: each must be closed and logged with its own code.
    const exact: ExactCheck[] = []
    for (const [code, bytes] of EXACT) {
      for (const [i, target] of targets.entries()) {
        const before = node.logs.filter((l) => l.code === code).length
        const a = await attack(target, bytes, code)
        const logged = await node.waitForLog((l) => l.code === code && node.logs.filter((m) => m.code === code).length > before, 2000).then(() => true, () => false)
        exact.push({ code, listener: i === 0 ? 'unix' : 'tcp', closed: a.closedByServer, logged })
      }
    }
    await sleep(200)
    const alive = node.proc.exitCode === null && node.proc.signalCode === null
    const codes: Record<string, number> = {}
    const uncoded: string[] = []
    for (const l of node.logs) {
      if ((l.level ?? 0) < 40) continue
      const code = typeof l.code === 'string' ? l.code : ''
      if (code.startsWith('FERRY_ERR_')) codes[code] = (codes[code] ?? 0) + 1
      else uncoded.push(JSON.stringify(l).slice(0, 300))
    }
    const byKind: Record<string, number> = {}
    for (const a of attacks) byKind[a.kind] = (byKind[a.kind] ?? 0) + 1
    const failed = (o: { status: number }): boolean => o.status !== 200
    const notClosed = attacks.filter((a) => !a.closedByServer)
    const loggedCodes = Object.values(codes).reduce((a, b) => a + b, 0)
    const report = summarize('7 hostile frames (native + uwsgi, unix + tcp)', `${attacks.length} hostile conns (${scale.parallel} at once, seed 0x${SEED.toString(16)}) + GET ${scale.normalConnections} conns via front, ${scale.durationMs / 1000} s`, res, failed, rss,
      [`hostile connections not closed by the node: ${notClosed.length}`, `error codes logged: ${loggedCodes} (${Object.keys(codes).length} distinct)`, `node alive: ${alive}`])
    return { exact, report, failedDetail: describeFailures(res.outcomes, failed), attacks: attacks.length, byKind, notClosed, codes, uncoded, alive, appPeakMiB: rss.peaks().app ?? 0, normalSent: res.sent }
  } finally {
    await c.run()
  }
}
