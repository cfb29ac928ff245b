/**
 * Spawning real `ferry` processes for tests: `startFerry(['app', handler, '--listen', …])`
 * runs packages/cli/dist/bin.js with the `ferry` command's node flags (build first: npm run
 * build), waits for the JSON log line with
 * "msg":"listening" and returns its addresses. Every log line is kept (parsed) in `logs`.
 * `stop()` sends SIGTERM and waits for the exit (SIGKILL after a grace period); register
 * it with t.after / after so nothing outlives the test.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { NODE_FLAGS } from '../../packages/cli/src/node-flags.ts'

const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname

export interface LogLine {
  level?: number
  msg?: string
  [key: string]: unknown
}

export interface FerryProcess {
  /** Canonical addresses from the "listening" line (real ports). */
  addresses: string[]
  /** The "listening" line itself. */
  listening: LogLine
  proc: ChildProcess
  pid: number
  /** Every JSON log line so far (stdout). */
  logs: LogLine[]
  /** Raw stderr so far. */
  stderr (): string
  /** Resolves with the first log line matching, waiting up to `ms`. */
  waitForLog (pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>
  /** Exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>
  /** SIGTERM, wait up to `ms` (default 10 s), then SIGKILL. Resolves with the exit code. */
  stop (ms?: number): Promise<number | string>
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv
  /** ms to wait for the "listening" line (default 20 s). */
  timeout?: number
  cwd?: string
  /** Which line means "up" (default msg === 'listening'). */
  ready?: (l: LogLine) => boolean
  /**
   * Send stdout to this file instead of a pipe, as an operator's log file: the test process
   * then parses log lines only when it looks at them (`logs`, `waitForLog`), not as they are
   * written — under load a pipe would make the test's own event loop (which may be the load
   * generator) parse every line the server logs.
   */
  logFile?: string
  /**
   * Run this executable with `args` instead of `node <NODE_FLAGS> dist/bin.js` — the
   * `ferry` command as npm links it (node_modules/.bin/ferry).
   */
  command?: string
}

export function startFerry (args: string[], options: StartOptions = {}): Promise<FerryProcess> {
  let logFd = options.logFile === undefined ? null : openSync(options.logFile, 'w+')
  const proc = spawn(options.command ?? process.execPath, options.command === undefined ? [...NODE_FLAGS, BIN, ...args] : args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', logFd ?? 'pipe', 'pipe']
  })
  const logs: LogLine[] = []
  const waiters: { pred: (l: LogLine) => boolean, resolve: (l: LogLine) => void }[] = []
  let stderr = ''
  let buf = ''
  const take = (chunk: string): void => {
    buf += chunk
    let nl: number
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl)
      buf = buf.slice(nl + 1)
      if (line.trim() === '') continue
      let parsed: LogLine
      try {
        parsed = JSON.parse(line) as LogLine
      } catch {
        parsed = { msg: line, raw: true }
      }
      logs.push(parsed)
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.pred(parsed)) {
          waiters[i]!.resolve(parsed)
          waiters.splice(i, 1)
        }
      }
    }
  }
  // From a log file: read what is new since the last look (while someone waits, every 25 ms).
  let fileOffset = 0
  let poller: NodeJS.Timeout | null = null
  const readFile = (): void => {
    if (logFd === null) return
    const chunk = Buffer.allocUnsafe(1 << 16)
    let n: number
    while ((n = readSync(logFd, chunk, 0, chunk.length, fileOffset)) > 0) {
      fileOffset += n
      take(chunk.toString('utf8', 0, n))
    }
    if (waiters.length === 0 && poller !== null) {
      clearInterval(poller)
      poller = null
    }
  }
  const watch = (): void => {
    if (logFd !== null && poller === null) poller = setInterval(readFile, 25)
  }
  if (logFd === null) {
    proc.stdout!.setEncoding('utf8')
    proc.stdout!.on('data', take)
  }
  proc.stderr!.setEncoding('utf8')
  proc.stderr!.on('data', (c: string) => { stderr += c })
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => {
      if (logFd !== null) {
        readFile()
        if (poller !== null) clearInterval(poller)
        poller = null
        closeSync(logFd)
        logFd = null
      }
      resolve(code ?? signal ?? -1)
    })
  })
  const waitForLog = (pred: (l: LogLine) => boolean, ms = 10000): Promise<LogLine> => {
    readFile()
    const found = logs.find(pred)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const waiter = { pred, resolve: (l: LogLine) => { clearTimeout(timer); resolve(l) } }
      const drop = (): void => {
        const i = waiters.indexOf(waiter)
        if (i >= 0) waiters.splice(i, 1)
      }
      const timer = setTimeout(() => {
        drop()
        reject(new Error(`no matching log line within ${ms} ms; stderr: ${stderr.slice(-2000)}`))
      }, ms)
      waiters.push(waiter)
      watch()
      exited.then((code) => {
        drop()
        clearTimeout(timer)
        reject(new Error(`ferry exited (${code}) before the expected log line; stderr: ${stderr.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`))
      })
    })
  }
  const stop = async (ms = 10000): Promise<number | string> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM')
      const timer = setTimeout(() => proc.kill('SIGKILL'), ms)
      const code = await exited
      clearTimeout(timer)
      return code
    }
    return exited
  }
  const ready = options.ready ?? ((l: LogLine) => l.msg === 'listening')
  return waitForLog(ready, options.timeout ?? 20000).then((listening) => ({
    addresses: (listening.addresses as string[] | undefined) ?? [],
    listening,
    proc,
    pid: proc.pid!,
    get logs () {
      readFile()
      return logs
    },
    stderr: () => stderr,
    waitForLog,
    exited,
    stop
  }), async (err: unknown) => {
    await stop(2000)
    throw err
  })
}

/**
 * The ferry processes and temp directory of one test file: `start` runs ferry and keeps the
 * process; after the file's tests (node:test `after`) every process is stopped and the
 * directory removed.
 */
/** SIGHUP a process; resolves with the first log line from then on that matches `pred`. */
export async function hup (p: FerryProcess, pred: (l: LogLine) => boolean): Promise<LogLine> {
  const from = p.logs.length
  p.proc.kill('SIGHUP')
  return await p.waitForLog((l) => p.logs.indexOf(l) >= from && pred(l))
}

export function fileScope (prefix: string): { dir: string, procs: FerryProcess[], start (args: string[], env?: NodeJS.ProcessEnv): Promise<FerryProcess> } {
  const tmp = tempDir(prefix)
  const procs: FerryProcess[] = []
  after(async () => {
    await Promise.all(procs.map((p) => p.stop()))
    tmp.cleanup()
  })
  return {
    dir: tmp.dir,
    procs,
    start: async (args, env = {}) => {
      const p = await startFerry(args, { env })
      procs.push(p)
      return p
    }
  }
}

/** A fresh temp directory, removed by the returned cleanup. */
export function tempDir (prefix = 'ferry-test-'): { dir: string, cleanup (): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** VmRSS of a process in KiB (Linux /proc). */
export async function rssKiB (pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m === null ? 0 : Number(m[1])
}
