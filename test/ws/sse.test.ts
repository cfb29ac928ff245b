/**
 * Server-sent events through `ferry front` → `ferry app` (issue #8): a stream that keeps
 * sending is never cut by the front's timeouts, however long it runs, and its bytes (events
 * and `: heartbeat` comments) pass through untouched and unbuffered — also with the app's
 * compress middleware on, which leaves text/event-stream alone. A stream that goes silent
 * longer than --idle-timeout is cut, and the front logs FERRY_ERR_FRONT_UPSTREAM_TIMEOUT
 * with the request id. Either way the end reaches the handler (request.signal aborts; its
 * body stream's cancel runs, also for a silent stream: see the last test).
 *
 * The front runs with --timeout 400ms --idle-timeout 400ms; the handler sends every 100 ms
 * and the client reads for 3 s (more than 7 × either timeout).
 */
import assert from 'node:assert/strict'
import { type IncomingMessage, request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { type FerryProcess, type LogLine, startFerry, tempDir } from '../helpers/proc.ts'
import { event, HEARTBEAT } from './fixtures/sse-app.ts'

const FIXTURE = new URL('./fixtures/sse-app.ts', import.meta.url).pathname
const READ_MS = 3000

interface Arrival { at: number, bytes: Buffer }

interface Read {
  res: IncomingMessage
  started: number
  arrivals: Arrival[]
  /** Set when the response ended or broke before the client let go. */
  ended: null | 'end' | 'aborted'
  body (): string
}

/** GET `path`, collecting every chunk with its arrival time. */
function open (host: string, path: string, headers: Record<string, string> = {}): Promise<Read> {
  const [hostname, port] = [host.slice(0, host.lastIndexOf(':')), Number(host.slice(host.lastIndexOf(':') + 1))]
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const read: Read = {
        res,
        started,
        arrivals: [],
        ended: null,
        body: () => Buffer.concat(read.arrivals.map((a) => a.bytes)).toString('utf8')
      }
      res.on('data', (bytes: Buffer) => read.arrivals.push({ at: performance.now(), bytes }))
      res.on('end', () => { read.ended ??= 'end' })
      res.on('aborted', () => { read.ended ??= 'aborted' })
      res.on('error', () => { read.ended ??= 'aborted' })
      resolve(read)
    })
    req.on('error', reject)
    req.end()
  })
}

/** The first `n` events, each followed by its heartbeat, as the handler sends them. */
function expected (n: number): string {
  let s = ''
  for (let i = 1; i <= n; i++) s += event(i) + HEARTBEAT
  return s
}

interface Active { active: number, aborted: number }

/** Polls the handler's counters until `done` holds (up to ~5 s); returns the last reading. */
async function handlerState (host: string, done: (a: Active) => boolean): Promise<Active> {
  let last: Active = { active: -1, aborted: -1 }
  for (let i = 0; i < 100; i++) {
    last = await (await fetch(`http://${host}/active`)).json() as Active
    if (done(last)) return last
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return last
}

function closed (res: IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed || res.complete) resolve()
    else res.once('close', () => resolve())
  })
}

describe('server-sent events through ferry front', () => {
  const tmp = tempDir('ferry-sse-')
  let app: FerryProcess
  let front: FerryProcess
  let host: string

  before(async () => {
    const sock = join(tmp.dir, 'app.sock')
    app = await startFerry(['app', FIXTURE, '--listen', `unix:${sock}`, '--threads', '1', '--middleware', 'compress'])
    front = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `unix:${sock}`, '--timeout', '400ms', '--idle-timeout', '400ms'])
    host = front.addresses[0]!.replace('tcp://', '')
  })

  after(async () => {
    await front?.stop()
    await app?.stop()
    tmp.cleanup()
  })

  test('the compress middleware is on: plain text is gzipped', async () => {
    const read = await open(host, '/text', { 'accept-encoding': 'gzip' })
    await closed(read.res)
    assert.equal(read.res.statusCode, 200)
    assert.equal(read.res.headers['content-encoding'], 'gzip')
    assert.equal(gunzipSync(Buffer.concat(read.arrivals.map((a) => a.bytes))).toString(), 'ferry compresses plain text. '.repeat(150))
  })

  test('a stream that keeps sending is not cut, and its bytes arrive untouched as they are sent', async () => {
    // gzip and br offered: the compress middleware must not hold events in a compressor
    const read = await open(host, '/events', { 'accept-encoding': 'gzip, deflate, br' })
    const { res } = read
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-type'], 'text/event-stream')
    assert.equal(res.headers['content-length'], undefined)
    assert.equal(res.headers['content-encoding'], undefined)
    assert.equal(res.headers['transfer-encoding'], 'chunked')
    const reqId = res.headers['x-request-id']
    assert.ok(typeof reqId === 'string' && reqId !== '')

    await new Promise((resolve) => setTimeout(resolve, READ_MS))
    assert.equal(read.ended, null, `the front cut a stream that was sending (${read.ended})`)
    res.destroy()
    await closed(res)

    const body = read.body()
    const complete = body.split(HEARTBEAT).length - 1
    // byte-identical: exactly the handler's events and heartbeats, in order, nothing added
    // (the client let go at an arbitrary point, so the last event may be cut short)
    assert.ok(expected(complete + 1).startsWith(body), `unexpected bytes: ${JSON.stringify(body.slice(0, 300))}`)
    assert.equal(body.slice(0, expected(complete).length), expected(complete))
    assert.ok(complete >= 10, `only ${complete} events in ${READ_MS} ms`)

    // not buffered: the first event reached the client within 1 s, while the stream was open,
    // and the events came in many separate pieces rather than in one late batch
    const first = read.arrivals[0]!
    assert.ok(first.at - read.started < 1000, `first event after ${Math.round(first.at - read.started)} ms`)
    assert.ok(first.bytes.toString('utf8').startsWith(event(1)))
    let bursts = 1
    for (let i = 1; i < read.arrivals.length; i++) if (read.arrivals[i]!.at - read.arrivals[i - 1]!.at > 50) bursts++
    assert.ok(bursts >= 5, `${read.arrivals.length} chunks arrived in ${bursts} bursts`)

    // the front saw the client leave (499 'client closed'), not a timeout
    const line = await front.waitForLog((l) => l.reqId === reqId && l.path === '/events' && l.status !== undefined)
    assert.equal(line.code, 'client closed')
    assert.equal(line.status, 200)
    assert.equal(front.logs.some((l: LogLine) => l.reqId === reqId && l.code === 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT'), false)
    // the client's leaving reached the handler: request.signal aborted, its stream cancelled
    assert.deepEqual(await handlerState(host, (a) => a.active === 0 && a.aborted === 1), { active: 0, aborted: 1 })
  })

  test('a stream silent for longer than --idle-timeout is cut, and the front logs the timeout with the request id', async () => {
    const read = await open(host, '/silent?after=3')
    const { res } = read
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-type'], 'text/event-stream')
    const reqId = res.headers['x-request-id']
    assert.ok(typeof reqId === 'string' && reqId !== '')
    await closed(res)
    // cut: the chunked body never got its last chunk
    assert.equal(read.ended, 'aborted')
    assert.equal(res.complete, false)
    assert.equal(read.body(), expected(3))
    const line = await front.waitForLog((l) => l.reqId === reqId && l.code === 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT')
    assert.equal(line.path, '/silent?after=3')
    assert.equal(line.msg, 'upstream request failed')
    assert.match(String(line.err), /idle for 400 ms/)
    // the cut reached the handler's request.signal
    assert.equal((await handlerState(host, (a) => a.aborted === 2)).aborted, 2)
  })

  test('the cut also cancels the handler\'s silent body stream (its ReadableStream cancel runs)', async () => {
    const state = await handlerState(host, (a) => a.active === 0)
    assert.equal(state.active, 0, `${state.active} silent stream(s) still running after the front cut them`)
  })
})
