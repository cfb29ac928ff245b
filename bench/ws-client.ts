/**
 * The WebSocket bench's load generator, a child process of bench/ws.ts (so its CPU is its
 * own, not the harness's): `clients` ws clients, each in a closed loop — send one binary
 * message of `size` bytes, wait for its echo, record the round trip, send the next.
 *
 *   node --import tsx bench/ws-client.ts <ws-url> <clients> <size>
 *
 * Driven over IPC by the parent:
 *   child → {type:'ready', connected, failed, firstError}   every client opened (or failed)
 *   parent → {type:'run'}    start the loops (warm-up: nothing is counted yet)
 *   parent → {type:'start'}  zero the counters: the measured window begins
 *   parent → {type:'stop'}   the window ends: no new sends; wait for the echoes in flight
 *                            (≤ 2 s), close every client (1000), then
 *   child → {type:'result', …WindowResult}
 */
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'

export interface WindowResult {
  /** Echoes received inside the window. */
  messages: number
  /** The window as this process saw it, seconds. */
  seconds: number
  p50ms: number
  p99ms: number
  /** Failed connects, client errors, unexpected closes, wrong echoes, echoes lost at the end. */
  errors: number
  /** The first error's text, for the report. */
  firstError: string | null
}

export type ParentMessage = { type: 'run' } | { type: 'start' } | { type: 'stop' }
export type ChildMessage =
  | { type: 'ready', connected: number, failed: number, firstError: string | null }
  | ({ type: 'result' } & WindowResult)

const [url, clientsArg, sizeArg] = process.argv.slice(2)
const CLIENTS = Number(clientsArg ?? 100)
const SIZE = Number(sizeArg ?? 64)
if (url === undefined || !(CLIENTS > 0) || !(SIZE > 0)) {
  console.error('usage: node --import tsx bench/ws-client.ts <ws-url> <clients> <size>')
  process.exit(2)
}

const send = (m: ChildMessage): void => { process.send!(m) }

let running = false
let counting = false
let messages = 0
let errors = 0
let firstError: string | null = null
let inFlight = 0
/** Round trips of the window, ms; grown by doubling. */
let lat = new Float64Array(1 << 18)
let latN = 0
let windowStart = 0

function fail (why: string): void {
  errors++
  firstError ??= why
}

function record (ms: number): void {
  if (latN === lat.length) {
    const bigger = new Float64Array(lat.length * 2)
    bigger.set(lat)
    lat = bigger
  }
  lat[latN++] = ms
}

interface Client { ws: WebSocket, sentAt: number, waiting: boolean, closing: boolean }

const payload = Buffer.alloc(SIZE, 0x61)

function fire (c: Client): void {
  c.sentAt = performance.now()
  c.waiting = true
  inFlight++
  c.ws.send(payload, { binary: true })
}

function open (): Promise<Client | null> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url!, { perMessageDeflate: false })
    const c: Client = { ws, sentAt: 0, waiting: false, closing: false }
    let opened = false
    ws.on('open', () => { opened = true; resolve(c) })
    ws.on('error', (err) => {
      fail(`client error: ${err.message}`)
      if (!opened) resolve(null)
    })
    ws.on('close', (code, reason) => {
      if (c.waiting) { c.waiting = false; inFlight-- }
      if (opened && !c.closing) fail(`closed by the server: ${code} ${reason.toString()}`)
    })
    ws.on('message', (data, isBinary) => {
      const now = performance.now()
      if (!c.waiting) return fail('an echo nobody waited for')
      c.waiting = false
      inFlight--
      if (!isBinary || (data as Buffer).length !== SIZE) fail(`wrong echo: ${isBinary ? 'binary' : 'text'} of ${(data as Buffer).length} bytes`)
      else if (counting) {
        messages++
        record(now - c.sentAt)
      }
      if (running) fire(c)
    })
  })
}

function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
}

const opened = await Promise.all(Array.from({ length: CLIENTS }, open))
const clients = opened.filter((c): c is Client => c !== null)
send({ type: 'ready', connected: clients.length, failed: CLIENTS - clients.length, firstError })

process.on('message', async (m: ParentMessage) => {
  if (m.type === 'run') {
    running = true
    for (const c of clients) fire(c)
  } else if (m.type === 'start') {
    messages = 0
    latN = 0
    counting = true
    windowStart = performance.now()
  } else if (m.type === 'stop') {
    const seconds = (performance.now() - windowStart) / 1000
    counting = false
    running = false
    const counted = messages
    const sorted = lat.subarray(0, latN).sort()
    const deadline = Date.now() + 2000
    while (inFlight > 0 && Date.now() < deadline) await sleep(10)
    if (inFlight > 0) fail(`${inFlight} echoes still missing 2 s after the window`)
    errors += inFlight
    await Promise.all(clients.map((c) => new Promise<void>((resolve) => {
      c.closing = true
      if (c.ws.readyState === WebSocket.CLOSED) return resolve()
      const t = setTimeout(() => { c.ws.terminate(); resolve() }, 2000)
      c.ws.once('close', () => { clearTimeout(t); resolve() })
      c.ws.close(1000)
    })))
    send({ type: 'result', messages: counted, seconds, p50ms: percentile(sorted, 0.5), p99ms: percentile(sorted, 0.99), errors, firstError })
    process.disconnect()
  }
})
