/**
 * Helpers for the front's tests: start real processes (the test native node, `ferry front`,
 * uWSGI) on real sockets in fresh temp dirs, wait for their "listening" line, and clean up.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { NODE_FLAGS } from '../../packages/cli/src/node-flags.ts'

export const ROOT = new URL('../..', import.meta.url).pathname
export const CLI = join(ROOT, 'packages/cli/dist/bin.js')
export const NATIVE_NODE = join(ROOT, 'test/front/fixtures/native-node.ts')

export type Hooks = { after: (fn: () => Promise<void> | void) => void }

/**
 * Cleanups registered from `before` hooks run once, when the file's tests are done
 * (node:test's own after() called inside a hook fires too early for shared processes).
 */
export function fileHooks (after: (fn: () => Promise<void>) => void): Hooks {
  const fns: Array<() => Promise<void> | void> = []
  after(async () => {
    for (const fn of fns.reverse()) await fn()
  })
  return { after: (fn) => { fns.push(fn) } }
}

export function tempDir (t: TestContext | { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-front-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface Proc {
  child: ChildProcess
  /** Every JSON line seen on stdout. */
  lines: Array<Record<string, unknown>>
  addresses: string[]
  /** Resolves with the first line that matches. */
  waitFor (pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  stop (signal?: NodeJS.Signals): Promise<void>
  exited: Promise<number | null>
  /** Raw stderr so far. */
  stderr (): string
  /** Raw stdout so far (the JSON lines as written). */
  stdout (): string
}

/** Spawn a process that logs a JSON `"msg":"listening"` line with `addresses` (`ferry` — args[0] CLI — with its node flags). */
export async function startProc (t: { after: (fn: () => Promise<void> | void) => void }, args: string[], opts: { env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<Proc> {
  const child = spawn(process.execPath, args[0] === CLI ? [...NODE_FLAGS, ...args] : args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Array<Record<string, unknown>> = []
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean, resolve: (l: Record<string, unknown>) => void }> = []
  let buf = ''
  let stderr = ''
  let stdout = ''
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (d: string) => {
    stdout += d
    buf += d
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const text = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      let line: Record<string, unknown>
      try { line = JSON.parse(text) as Record<string, unknown> } catch { continue }
      lines.push(line)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.pred(line)) {
          waiters[i]!.resolve(line)
          waiters.splice(i, 1)
        }
      }
    }
  })
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (d: string) => { stderr += d })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const waitFor = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15000): Promise<Record<string, unknown>> => {
    const seen = lines.find(pred)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line from ${args.join(' ')}\nstderr: ${stderr}`)), timeoutMs)
      const w = { pred, resolve: (l: Record<string, unknown>) => { clearTimeout(timer); resolve(l) } }
      waiters.push(w)
      exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`process exited (${code}) before the expected line: ${args.join(' ')}\nstderr: ${stderr}`))
      })
    })
  }
  const stop = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal)
      await exited
    }
  }
  t.after(() => stop())
  const listening = await waitFor((l) => l.msg === 'listening', opts.timeoutMs ?? 15000)
  return { child, lines, addresses: listening.addresses as string[], waitFor, stop, exited, stderr: () => stderr, stdout: () => stdout }
}

export function startNode (t: { after: (fn: () => Promise<void> | void) => void }, listen: string, name: string, extra: string[] = []): Promise<Proc> {
  return startProc(t, ['--import', 'tsx', NATIVE_NODE, '--listen', listen, '--name', name, ...extra])
}

export function startFront (t: { after: (fn: () => Promise<void> | void) => void }, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  return startProc(t, [CLI, 'front', '--listen', '127.0.0.1:0', '--no-access-log', ...args], { env })
}

/** `tcp://127.0.0.1:40123` → base URL. */
export function baseUrl (address: string): string {
  return `http://${address.replace('tcp://', '')}`
}

export interface Res {
  status: number
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: Buffer
}

/** One request with node:http (no agent: a fresh connection each). */
export function fetchRaw (url: string, opts: { method?: string, headers?: Record<string, string | string[]> | string[], body?: Buffer | string, timeoutMs?: number } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    let headers = opts.headers
    if (opts.body !== undefined && !Array.isArray(headers)) {
      // Node's client sends no framing for a DELETE/OPTIONS body unless told the length.
      headers = { 'content-length': String(Buffer.byteLength(opts.body)), ...headers }
    }
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.setTimeout(opts.timeoutMs ?? 20000, () => req.destroy(new Error('client timeout')))
    req.end(opts.body)
  })
}

/** Resident set size of a process, bytes (Linux /proc). */
export function rssOf (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
