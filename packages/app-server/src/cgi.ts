/**
 * A CGI mount (RFC 3875): a program per request, spawned on the main thread's event loop
 * (outside the worker pools) in its own process group. The request body goes to its stdin
 * as it arrives (credit returns to the front once stdin took the bytes); its stdout is parsed
 * as a CGI response — header lines, a blank line, the body — and streamed on, pausing stdout
 * while the client is behind. `Status:` sets the status; `Location:` with an absolute URL is
 * a client redirect (302 unless a Status says otherwise); `Location: /path` alone is a local
 * redirect: the request is dispatched again, as a GET to that path, through the mounts (at
 * most MAX_REDIRECTS hops). The mount's timeout bounds the program's whole run: past it the
 * process group gets SIGTERM, then SIGKILL, and the client 504. stderr goes to the log line
 * by line with the request id. At most `concurrency` programs run at once; past it requests
 * wait in a bounded queue, and past that get 503.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { realpathSync } from 'node:fs'
import { dirname } from 'node:path'
import type { FerryError, RequestHead } from '@ferry/protocol'
import type { Logger } from 'pino'
import { cgiEnv, findScript } from './cgi-env.js'
import { appError } from './errors.js'
import { type Dispatcher, type Mount, stripPrefix } from './mounts.js'
import type { Exchange } from './pool.js'

export const MAX_REDIRECTS = 5
/** Bytes of CGI response head we read before giving up on it (502). */
const MAX_HEAD = 64 * 1024
/** Response bytes handed on but not yet written by the connection, before pausing stdout. */
const WINDOW = 256 * 1024
/** ms between SIGTERM and SIGKILL. */
const KILL_GRACE = 1000
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'status'])

export interface CgiOptions {
  /** The folder of programs. */
  root: string
  prefix: string
  /** ms for the whole run; 0 = none. */
  timeout: number
  concurrency: number
  maxQueue: number
  log: Logger
  /** The server's router, for local redirects. */
  route (path: string): Mount | null
}

/** An exchange that relays a local redirect's answer to the original request. */
class Forward implements Exchange {
  readonly head: RequestHead
  readonly hops: number
  #outer: CgiCall
  #done: () => void
  /** `done` ends the original call once the redirected request is answered. */
  constructor (head: RequestHead, hops: number, outer: CgiCall, done: () => void) {
    this.head = head
    this.hops = hops
    this.#outer = outer
    this.#done = done
  }

  onHead (status: number, headers: string[], bodyLength: number, body: Uint8Array | null, end: boolean): void {
    this.#outer.ex.onHead(status, headers, bodyLength, body, end)
    if (end) this.#done()
  }

  onChunk (chunk: Uint8Array): void { this.#outer.ex.onChunk(chunk) }
  onEnd (): void {
    this.#outer.ex.onEnd()
    this.#done()
  }

  onFail (err: FerryError): void {
    this.#outer.ex.onFail(err)
    this.#done()
  }

  onConsumed (): void {}
}

class CgiCall {
  readonly ex: Exchange
  readonly hops: number
  child: ChildProcess | null = null
  pending: Buffer[] = []
  bodyEnded = false
  stdinOpen = false
  started = false
  done = false
  headSent = false
  redirect: string | null = null
  head: Buffer = Buffer.alloc(0)
  outstanding = 0
  paused = false
  timer: NodeJS.Timeout | null = null
  forward: { d: Dispatcher, ticket: object } | null = null
  constructor (ex: Exchange, hops: number) {
    this.ex = ex
    this.hops = hops
  }
}

export class CgiRunner implements Dispatcher {
  #o: CgiOptions
  #realRoot: string
  #queue: CgiCall[] = []
  #running = 0
  #live = new Set<CgiCall>()
  #closing = false
  #drainWaiters: (() => void)[] = []
  readonly counters = { started: 0, timedOut: 0, spawnFailed: 0, refused: 0 }

  constructor (options: CgiOptions) {
    this.#o = options
    try {
      this.#realRoot = realpathSync(options.root)
    } catch (cause) {
      throw appError('FERRY_ERR_APP_OPTIONS', `CGI folder ${options.root}: ${(cause as Error).message}`, { cause })
    }
  }

  get running (): number { return this.#running }
  get queued (): number { return this.#queue.length }

  submit (ex: Exchange): object | FerryError {
    if (this.#closing) return appError('FERRY_ERR_APP_SHUTTING_DOWN')
    const call = new CgiCall(ex, (ex as Partial<Forward>).hops ?? 0)
    if (this.#running < this.#o.concurrency) {
      this.#start(call)
      return call
    }
    if (this.#queue.length >= this.#o.maxQueue) {
      this.counters.refused++
      return appError('FERRY_ERR_APP_CGI_BUSY', `${this.#running} running, ${this.#queue.length} waiting`)
    }
    this.#queue.push(call)
    this.#live.add(call)
    return call
  }

  body (ticket: object, chunk: Uint8Array): void {
    const call = ticket as CgiCall
    if (call.done) return
    if (call.stdinOpen) this.#write(call, Buffer.from(chunk))
    else if (call.child === null) call.pending.push(Buffer.from(chunk)) // not spawned yet
    else call.ex.onConsumed(chunk.byteLength) // the program closed its stdin: drop, keep credit flowing
  }

  bodyEnd (ticket: object): void {
    const call = ticket as CgiCall
    call.bodyEnded = true
    if (call.stdinOpen) call.child!.stdin!.end()
  }

  cancel (ticket: object): void {
    const call = ticket as CgiCall
    if (call.done) return
    if (call.forward !== null) call.forward.d.cancel(call.forward.ticket)
    this.#end(call)
  }

  credit (ticket: object, n: number): void {
    const call = ticket as CgiCall
    if (call.forward !== null) {
      call.forward.d.credit(call.forward.ticket, n)
      return
    }
    call.outstanding -= n
    if (call.paused && call.outstanding <= WINDOW / 2 && call.child !== null) {
      call.paused = false
      call.child.stdout!.resume()
    }
  }

  // ── a run ──────────────────────────────────────────────────────────────────

  #start (call: CgiCall): void {
    this.#running++
    call.started = true
    this.#live.add(call)
    const head = call.ex.head
    const q = head.path.indexOf('?')
    const rest = stripPrefix(q < 0 ? head.path : head.path.slice(0, q), this.#o.prefix)
    findScript(this.#realRoot, this.#o.prefix, rest).then((script) => {
      if (call.done) return
      this.#spawn(call, script.filename, cgiEnv(head, script))
    }, (err: FerryError) => this.#fail(call, err))
  }

  #spawn (call: CgiCall, filename: string, env: Record<string, string>): void {
    const head = call.ex.head
    const log = this.#o.log
    this.counters.started++
    const child = spawn(filename, [], { cwd: dirname(filename), env, detached: true, stdio: ['pipe', 'pipe', 'pipe'] })
    call.child = child
    child.on('error', (err) => {
      this.counters.spawnFailed++
      log.error({ err, reqId: head.requestId, script: filename, code: 'FERRY_ERR_APP_CGI_SPAWN' }, 'CGI program could not start')
      this.#fail(call, appError('FERRY_ERR_APP_CGI_SPAWN', (err as Error).message))
    })
    if (child.pid === undefined) return
    log.debug({ reqId: head.requestId, script: filename, pid: child.pid }, 'CGI program started')
    if (this.#o.timeout > 0) {
      call.timer = setTimeout(() => {
        this.counters.timedOut++
        log.warn({ reqId: head.requestId, script: filename, pid: child.pid, code: 'FERRY_ERR_APP_CGI_TIMEOUT', ms: this.#o.timeout }, 'CGI program ran past the timeout; killing its process group')
        this.#fail(call, appError('FERRY_ERR_APP_CGI_TIMEOUT', `${this.#o.timeout} ms`))
      }, this.#o.timeout)
    }
    // stdin: what arrived already, then the rest as it comes
    const stdin = child.stdin!
    stdin.on('error', () => {
      // EPIPE: the program does not read its input; what is left is dropped
      call.stdinOpen = false
    })
    call.stdinOpen = true
    for (const c of call.pending) this.#write(call, c)
    call.pending = []
    if (call.bodyEnded || head.bodyLength === 0) stdin.end()
    // stderr → log, line by line
    let errBuf = ''
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (s: string) => {
      errBuf += s
      let nl: number
      while ((nl = errBuf.indexOf('\n')) >= 0) {
        log.warn({ reqId: head.requestId, script: filename, stderr: errBuf.slice(0, nl) }, 'CGI stderr')
        errBuf = errBuf.slice(nl + 1)
      }
      if (errBuf.length > 8192) {
        log.warn({ reqId: head.requestId, script: filename, stderr: errBuf }, 'CGI stderr')
        errBuf = ''
      }
    })
    child.stderr!.on('end', () => { if (errBuf !== '') log.warn({ reqId: head.requestId, script: filename, stderr: errBuf }, 'CGI stderr') })
    child.stdout!.on('data', (chunk: Buffer) => this.#onStdout(call, chunk))
    child.on('close', (code, signal) => this.#onClose(call, code, signal))
  }

  #write (call: CgiCall, chunk: Buffer): void {
    const n = chunk.byteLength
    call.child!.stdin!.write(chunk, (err) => { if (err == null && !call.done) call.ex.onConsumed(n) })
  }

  #onStdout (call: CgiCall, chunk: Buffer): void {
    if (call.done) return
    if (call.headSent) {
      this.#send(call, chunk)
      return
    }
    if (call.redirect !== null) return // a local redirect has no body
    call.head = call.head.byteLength === 0 ? chunk : Buffer.concat([call.head, chunk])
    const parsed = parseCgiHead(call.head)
    if (parsed === null) {
      if (call.head.byteLength > MAX_HEAD) this.#fail(call, appError('FERRY_ERR_APP_CGI_BAD_RESPONSE', `no end of header within ${MAX_HEAD} bytes`))
      return
    }
    if ('error' in parsed) {
      this.#fail(call, appError('FERRY_ERR_APP_CGI_BAD_RESPONSE', parsed.error))
      return
    }
    call.head = Buffer.alloc(0)
    let { status, headers } = parsed
    const location = get(headers, 'location')
    if (location !== undefined && status === 0) {
      if (location.startsWith('/') && !location.startsWith('//')) {
        call.redirect = location
        return
      }
      status = 302
    }
    if (status === 0) status = 200
    headers = headers.filter((_, i) => i % 2 === 1 || !HOP_BY_HOP.has(headers[i]!))
    const declared = Number(get(headers, 'content-length') ?? -1)
    call.headSent = true
    call.ex.onHead(status, headers, Number.isSafeInteger(declared) && declared >= 0 ? declared : -1, null, false)
    if (parsed.rest.byteLength > 0) this.#send(call, parsed.rest)
  }

  #send (call: CgiCall, chunk: Buffer): void {
    if (call.ex.head.method === 'HEAD' || call.done) return
    call.outstanding += chunk.byteLength
    call.ex.onChunk(chunk)
    if (call.outstanding > WINDOW && !call.paused) {
      call.paused = true
      call.child?.stdout?.pause()
    }
  }

  #onClose (call: CgiCall, code: number | null, signal: string | null): void {
    if (call.done) return
    const head = call.ex.head
    if (call.headSent) {
      call.ex.onEnd()
      this.#end(call)
      return
    }
    if (call.redirect !== null) {
      this.#localRedirect(call, call.redirect)
      return
    }
    this.#o.log.warn({ reqId: head.requestId, code: 'FERRY_ERR_APP_CGI_BAD_RESPONSE', exitCode: code, signal }, 'CGI program ended without a complete response head')
    this.#fail(call, appError('FERRY_ERR_APP_CGI_BAD_RESPONSE', `exit ${code ?? signal}`))
  }

  #localRedirect (call: CgiCall, location: string): void {
    const hops = call.hops + 1
    this.#release(call)
    if (hops > MAX_REDIRECTS) {
      this.#fail(call, appError('FERRY_ERR_APP_CGI_REDIRECT_LOOP', `${hops} hops`))
      return
    }
    const old = call.ex.head
    const headers: string[] = []
    for (let i = 0; i < old.headers.length; i += 2) {
      const n = old.headers[i]!
      if (n !== 'content-length' && n !== 'content-type' && n !== 'transfer-encoding') headers.push(n, old.headers[i + 1]!)
    }
    const next: RequestHead = { ...old, method: 'GET', path: location, headers, bodyLength: 0 }
    const mount = this.#o.route(location)
    if (mount === null) {
      this.#fail(call, appError('FERRY_ERR_APP_NO_MOUNT', location))
      return
    }
    this.#o.log.debug({ reqId: old.requestId, location, hops }, 'CGI local redirect')
    const fwd = new Forward(next, hops, call, () => this.#end(call))
    const r = mount.dispatcher.submit(fwd)
    if ('code' in r) {
      this.#fail(call, r as FerryError)
      return
    }
    call.forward = { d: mount.dispatcher, ticket: r }
    mount.dispatcher.bodyEnd(r)
  }

  #fail (call: CgiCall, err: FerryError): void {
    if (call.done) return
    this.#end(call)
    call.ex.onFail(err)
  }

  /** The program's slot is free (it exited, or was killed); the call may live on (redirect). */
  #release (call: CgiCall): void {
    if (call.timer !== null) clearTimeout(call.timer)
    call.timer = null
    const child = call.child
    if (child !== null) {
      call.child = null
      call.stdinOpen = false
      killGroup(child)
    }
    if (call.started) {
      call.started = false
      this.#running--
      this.#pump()
    }
  }

  #end (call: CgiCall): void {
    if (call.done) return
    call.done = true
    const i = this.#queue.indexOf(call)
    if (i >= 0) this.#queue.splice(i, 1)
    this.#release(call)
    this.#live.delete(call)
    if (this.#live.size === 0) for (const w of this.#drainWaiters.splice(0)) w()
  }

  #pump (): void {
    while (this.#running < this.#o.concurrency && this.#queue.length > 0) {
      const call = this.#queue.shift()!
      if (!call.done) this.#start(call)
    }
  }

  drain (): Promise<void> {
    this.#closing = true
    if (this.#live.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#drainWaiters.push(resolve))
  }

  async destroy (): Promise<void> {
    this.#closing = true
    for (const call of [...this.#live]) this.#fail(call, appError('FERRY_ERR_APP_SHUTTING_DOWN'))
  }
}

/** SIGTERM to the program's process group (it may have children), SIGKILL after a grace. */
function killGroup (child: ChildProcess): void {
  const pid = child.pid
  if (pid === undefined) return
  const signal = (sig: NodeJS.Signals): void => {
    try { process.kill(-pid, sig) } catch {}
  }
  if (child.exitCode === null && child.signalCode === null) signal('SIGTERM')
  else {
    // the leader is gone; anything it left in its group goes too
    signal('SIGTERM')
  }
  setTimeout(() => signal('SIGKILL'), KILL_GRACE).unref()
}

function get (headers: string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1]
  return undefined
}

/**
 * Parse a CGI response head (§6.2–6.3): header lines ended by LF or CRLF, then a blank line.
 * Returns null while incomplete. status 0 = no Status header.
 */
export function parseCgiHead (buf: Buffer): { status: number, headers: string[], rest: Buffer } | { error: string } | null {
  const headers: string[] = []
  let status = 0
  let pos = 0
  for (;;) {
    const nl = buf.indexOf(10, pos)
    if (nl < 0) return null
    let end = nl
    if (end > pos && buf[end - 1] === 13) end--
    if (end === pos) return { status, headers, rest: buf.subarray(nl + 1) }
    const line = buf.toString('latin1', pos, end)
    pos = nl + 1
    const colon = line.indexOf(':')
    if (colon <= 0) return { error: `not a header line: ${JSON.stringify(line.slice(0, 80))}` }
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) return { error: `bad header name ${JSON.stringify(name.slice(0, 80))}` }
    if (name === 'status') {
      const m = /^([1-5]\d\d)(?:\s|$)/.exec(value)
      if (m === null || Number(m[1]) < 200) return { error: `bad Status ${JSON.stringify(value.slice(0, 80))}` }
      status = Number(m[1])
      continue
    }
    headers.push(name, value)
  }
}
