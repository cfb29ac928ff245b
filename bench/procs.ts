/**
 * Child processes of the end-to-end bench: start a server, wait until it accepts
 * connections, read its CPU time and I/O bytes (its whole process tree: nginx and uWSGI
 * fork workers) from /proc, and stop it. Each server runs in its own process group so a
 * master and its workers are stopped together; nothing outlives the harness.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** Clock ticks per second of /proc/<pid>/stat utime/stime (USER_HZ: 100 on Linux). */
const CLK_TCK = 100

export interface ServerSpec {
  name: string
  command: string
  args: string[]
  cwd?: string
  env?: NodeJS.ProcessEnv
  /** 'listening-line': wait for a JSON log line with msg "listening" and addresses;
   * otherwise connect to this address ("unix:/path" or "tcp://host:port") until it accepts. */
  ready: 'listening-line' | string
  timeoutMs?: number
}

export interface ServerProc {
  name: string
  pid: number
  addresses: string[]
  stop (): Promise<void>
  /** Last lines of output, for error messages. */
  output (): string
}

const running = new Set<ServerProc>()

/**
 * When set, Node servers started from now on run with --cpu-prof and write their profiles
 * (one per thread) under `<dir>/<server name>/` when they exit.
 */
export const profiling: { dir: string | null } = { dir: null }

/** Node refuses --cpu-prof in NODE_OPTIONS: it goes before the script instead. */
function serverArgs (spec: ServerSpec): string[] {
  if (profiling.dir === null || spec.command !== process.execPath) return spec.args
  return ['--cpu-prof', `--cpu-prof-dir=${join(profiling.dir, spec.name)}`, ...spec.args]
}

/** Stops every server still running (harness exit, Ctrl-C). */
export async function stopAll (): Promise<void> {
  await Promise.all([...running].map((p) => p.stop()))
}

function killGroup (child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    try { child.kill(signal) } catch {}
  }
}

function probe (address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const opts = address.startsWith('unix:')
      ? { path: address.slice(5) }
      : (() => {
          const u = new URL(address.replace(/^tcp:/, 'http:'))
          return { host: u.hostname, port: Number(u.port) }
        })()
    const s = connect(opts)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

export async function startServer (spec: ServerSpec): Promise<ServerProc> {
  const child = spawn(spec.command, serverArgs(spec), {
    cwd: spec.cwd,
    env: spec.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true
  })
  let tail = ''
  let addresses: string[] | null = null
  let lineBuf = ''
  const keep = (s: string) => { tail = (tail + s).slice(-4000) }
  child.stderr!.setEncoding('utf8').on('data', keep)
  child.stdout!.setEncoding('utf8').on('data', (s: string) => {
    keep(s)
    if (addresses !== null || spec.ready !== 'listening-line') return
    lineBuf += s
    let nl: number
    while ((nl = lineBuf.indexOf('\n')) >= 0) {
      const line = lineBuf.slice(0, nl)
      lineBuf = lineBuf.slice(nl + 1)
      if (!line.includes('"listening"')) continue
      try {
        const msg = JSON.parse(line) as { msg?: string, addresses?: string[] }
        if (msg.msg === 'listening' && Array.isArray(msg.addresses)) addresses = msg.addresses
      } catch {}
    }
  })
  let exited = false
  const exit = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve() }))
  child.once('error', (err) => keep(`\nspawn error: ${err.message}`))
  const proc: ServerProc = {
    name: spec.name,
    pid: child.pid ?? -1,
    addresses: [],
    output: () => tail,
    stop: async () => {
      running.delete(proc)
      if (exited) return
      killGroup(child, 'SIGTERM')
      const t = setTimeout(() => killGroup(child, 'SIGKILL'), 3000)
      await exit
      clearTimeout(t)
      killGroup(child, 'SIGKILL') // workers left in the group, if any
    }
  }
  running.add(proc)
  const deadline = Date.now() + (spec.timeoutMs ?? 20000)
  for (;;) {
    if (exited) {
      running.delete(proc)
      throw new Error(`${spec.name} exited before it was ready:\n${tail}`)
    }
    if (spec.ready === 'listening-line') {
      if (addresses !== null) {
        proc.addresses = addresses
        break
      }
    } else if (await probe(spec.ready)) {
      proc.addresses = [spec.ready]
      break
    }
    if (Date.now() > deadline) {
      await proc.stop()
      throw new Error(`${spec.name} not ready after ${spec.timeoutMs ?? 20000} ms:\n${tail}`)
    }
    await sleep(50)
  }
  return proc
}

interface ProcStat { ppid: number, ticks: number }

function readStat (pid: string): ProcStat | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }
  } catch {
    return null
  }
}

/** pid → its descendants (including itself), from one scan of /proc. */
function trees (roots: readonly number[]): Map<number, number[]> {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const st = readStat(name)
    if (st === null) continue
    const list = children.get(st.ppid)
    if (list === undefined) children.set(st.ppid, [Number(name)])
    else list.push(Number(name))
  }
  const out = new Map<number, number[]>()
  for (const root of roots) {
    const all: number[] = []
    const stack = [root]
    while (stack.length > 0) {
      const p = stack.pop()!
      all.push(p)
      for (const c of children.get(p) ?? []) stack.push(c)
    }
    out.set(root, all)
  }
  return out
}

export interface Usage {
  /** CPU seconds (user + system) of the process tree. */
  cpuS: number
  /** Bytes read and written through syscalls (sockets included) by the tree. */
  readBytes: number
  writeBytes: number
  /**
   * Context switches (voluntary + involuntary) of every thread in the tree: each time a thread
   * blocked (an idle event loop waiting in epoll, a worker waiting for a message) or was
   * preempted. Threads that exited in between (a recycled worker) are not counted.
   */
  switches: number
  /** The involuntary ones among them: a thread that could have run on but was preempted. */
  preemptions: number
  /**
   * Seconds the tree's threads spent runnable but waiting for a CPU (the run-queue wait of
   * /proc/<pid>/task/<tid>/schedstat); null where the kernel keeps no schedstat.
   */
  waitS: number | null
}

const HAS_SCHEDSTAT = existsSync('/proc/self/schedstat')

/**
 * Context switches (all, and the involuntary ones) and run-queue wait (seconds; null without
 * schedstat) of every live thread of `pid`, from one listing of /proc/<pid>/task.
 */
function threadsOf (pid: number): { switches: number, preempted: number, waitS: number | null } {
  const out: { switches: number, preempted: number, waitS: number | null } = { switches: 0, preempted: 0, waitS: HAS_SCHEDSTAT ? 0 : null }
  let tids: string[]
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tids) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8')
      const involuntary = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0)
      out.switches += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0) + involuntary
      out.preempted += involuntary
      // schedstat's second field: ns spent runnable, waiting for a CPU
      if (out.waitS !== null) out.waitS += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[1] ?? 0) / 1e9
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out
}

function ioOf (pid: number): { r: number, w: number } {
  try {
    const s = readFileSync(`/proc/${pid}/io`, 'utf8')
    return { r: Number(/rchar: (\d+)/.exec(s)?.[1] ?? 0), w: Number(/wchar: (\d+)/.exec(s)?.[1] ?? 0) }
  } catch {
    return { r: 0, w: 0 }
  }
}

/** CPU and I/O counters of each server's whole process tree. */
export function usage (procs: readonly ServerProc[]): Map<string, Usage> {
  const t = trees(procs.map((p) => p.pid))
  const out = new Map<string, Usage>()
  for (const p of procs) {
    const u: Usage = { cpuS: 0, readBytes: 0, writeBytes: 0, switches: 0, preemptions: 0, waitS: 0 }
    for (const pid of t.get(p.pid) ?? []) {
      const th = threadsOf(pid)
      u.switches += th.switches
      u.preemptions += th.preempted
      u.waitS = th.waitS === null || u.waitS === null ? null : u.waitS + th.waitS
      u.cpuS += (readStat(String(pid))?.ticks ?? 0) / CLK_TCK
      const io = ioOf(pid)
      u.readBytes += io.r
      u.writeBytes += io.w
    }
    out.set(p.name, u)
  }
  return out
}

export function usageDelta (before: Map<string, Usage>, after: Map<string, Usage>): Map<string, Usage> {
  const out = new Map<string, Usage>()
  for (const [name, a] of after) {
    const b = before.get(name) ?? { cpuS: 0, readBytes: 0, writeBytes: 0, switches: 0, preemptions: 0, waitS: 0 }
    const waitS = a.waitS === null || b.waitS === null ? null : a.waitS - b.waitS
    out.set(name, { cpuS: a.cpuS - b.cpuS, readBytes: a.readBytes - b.readBytes, writeBytes: a.writeBytes - b.writeBytes, switches: a.switches - b.switches, preemptions: a.preemptions - b.preemptions, waitS })
  }
  return out
}

/** A free tcp port on 127.0.0.1 for servers that cannot report the port they bound (nginx). */
export async function freePort (): Promise<number> {
  const { createServer } = await import('node:net')
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/**
 * Waits until the servers are idle (less than `idleShare` of a core over a 250 ms window),
 * at most `maxMs`: worker threads and JIT of a fresh start must not land in the measurement.
 * Returns the ms waited.
 */
export async function settle (procs: readonly ServerProc[], maxMs = 5000, idleShare = 0.05): Promise<number> {
  const start = Date.now()
  let last = total(usage(procs))
  while (Date.now() - start < maxMs) {
    await sleep(250)
    const now = total(usage(procs))
    if (now - last < 0.25 * idleShare) break
    last = now
  }
  return Date.now() - start
}

function total (u: Map<string, Usage>): number {
  let cpu = 0
  for (const v of u.values()) cpu += v.cpuS
  return cpu
}
