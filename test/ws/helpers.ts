/**
 * Shared pieces of the WebSocket tests: a `ferry app` (test/ws/fixtures/ws-app.ts) behind a
 * `ferry front`, `ws` clients with awaitable open/message/close, a raw upgrade request for
 * the refusal answers, and the app's --stats gauges.
 */
import { request } from 'node:http'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import WebSocket from 'ws'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

export const HANDLER = new URL('./fixtures/ws-app.ts', import.meta.url).pathname

export interface Pair {
  app: FerryProcess
  front: FerryProcess
  /** host:port of the front */
  host: string
  /** the app's unix socket */
  sock: string
  /** the app's stats address (host:port) when started with stats */
  stats: string | null
  dir: string
}

export interface PairOptions {
  app?: string[]
  front?: string[]
  env?: NodeJS.ProcessEnv
  stats?: boolean
}

/** An app node on a unix socket in a fresh temp dir and a front on 127.0.0.1:0; all cleaned up by t.after or the returned stop. */
export async function startPair (options: PairOptions = {}): Promise<Pair & { stop (): Promise<void> }> {
  const tmp = tempDir('ferry-ws-')
  const sock = join(tmp.dir, 'app.sock')
  const appArgs = ['app', HANDLER, '--listen', `unix:${sock}`, '--threads', '1', ...(options.app ?? [])]
  if (options.stats === true) appArgs.push('--stats', 'tcp://127.0.0.1:0')
  let app: FerryProcess | null = null
  let front: FerryProcess | null = null
  const stop = async (): Promise<void> => {
    await Promise.all([front?.stop(), app?.stop()])
    tmp.cleanup()
  }
  try {
    app = await startFerry(appArgs, { env: options.env })
    front = await startFerry(['front', '--listen', 'tcp://127.0.0.1:0', '--upstream', `unix:${sock}`, '--no-access-log', ...(options.front ?? [])])
  } catch (err) {
    await stop()
    throw err
  }
  let stats: string | null = null
  if (options.stats === true) stats = String((await app.waitForLog((l) => l.msg === 'stats listening')).address).replace('tcp://', '')
  return { app, front, host: front.addresses[0]!.replace('tcp://', ''), sock, stats, dir: tmp.dir, stop }
}

/** startPair with cleanup registered on the test (or suite hook) context. */
export async function pairFor (t: { after (fn: () => unknown): void } | TestContext, options: PairOptions = {}): Promise<Pair> {
  const p = await startPair(options)
  t.after(() => p.stop())
  return p
}

export interface Client {
  ws: WebSocket
  /** The 101's headers. */
  headers: Record<string, string | string[] | undefined>
  /** Resolves with the next message (data, isBinary) not yet taken. */
  next (): Promise<{ data: Buffer, isBinary: boolean }>
  /** Resolves with the close code and reason once the socket is closed. */
  closed: Promise<{ code: number, reason: string }>
}

/** Open a `ws` client; rejects on any non-101 answer (with `status` and `body` on the error). */
export function connect (url: string, options: WebSocket.ClientOptions & { protocols?: string[] } = {}): Promise<Client> {
  const ws = new WebSocket(url, options.protocols ?? [], options)
  const queue: { data: Buffer, isBinary: boolean }[] = []
  const waiters: ((m: { data: Buffer, isBinary: boolean }) => void)[] = []
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const m = { data, isBinary }
    const w = waiters.shift()
    if (w !== undefined) w(m)
    else queue.push(m)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))
  })
  ws.on('error', () => {})
  return new Promise((resolve, reject) => {
    let headers: Record<string, string | string[] | undefined> = {}
    ws.once('upgrade', (res) => { headers = res.headers })
    ws.once('open', () => resolve({
      ws,
      headers,
      next: () => {
        const m = queue.shift()
        if (m !== undefined) return Promise.resolve(m)
        return new Promise((res, rej) => {
          waiters.push(res)
          closed.then((c) => rej(new Error(`socket closed (${c.code} ${c.reason}) before the next message`)))
        })
      },
      closed
    }))
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => {
        ws.terminate()
        reject(Object.assign(new Error(`unexpected response ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body }))
      })
    })
    ws.once('error', reject)
  })
}

export interface RawAnswer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** A GET with the given headers; the answer (any status other than 101) with its whole body. */
export function rawGet (host: string, path: string, headers: Record<string, string>): Promise<RawAnswer> {
  const [hostname, port] = host.split(':')
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port: Number(port), path, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('upgrade', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode!, headers: res.headers, body: '' })
    })
    req.on('error', reject)
    req.end()
  })
}

export const UPGRADE_HEADERS = {
  connection: 'Upgrade',
  upgrade: 'websocket',
  'sec-websocket-version': '13',
  'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ=='
} as const

/** The app's Prometheus text. */
export async function metrics (stats: string): Promise<string> {
  const res = await fetch(`http://${stats}/metrics`)
  return res.text()
}

/** One unlabelled (or exactly labelled) sample from Prometheus text. */
export function sample (text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `)) return Number(line.slice(name.length + 1))
  }
  return null
}

/** Resolves once `pred` holds (polled every 20 ms), or rejects after `ms`. */
export async function until (pred: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}
