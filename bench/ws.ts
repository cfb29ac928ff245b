/**
 * WebSocket bench (issue #8 "Measure"): messages per second and latency of a 64-byte binary
 * echo over 100 sockets, through
 *   ws     — a single-process `ws` WebSocketServer echo (bench/servers/ws-echo.mjs): the ceiling;
 *   ferry  — `ferry front` → `ferry app --threads 2` over a unix socket, the handler
 *            bench/servers/ws-echo-handler.mjs echoing in the worker pool;
 * interleaved (round 1: ws ferry, round 2: ws ferry, …). Each round starts the servers fresh,
 * waits until they are idle, connects the clients (bench/ws-client.ts, a child process: the
 * generator's CPU is its own), warms up, then measures echoes/s, p50/p99 round trip, errors
 * and the CPU of every server process (/proc/<pid>/stat, all threads) ÷ messages.
 *
 *   node --import tsx bench/ws.ts [--quick] [--rounds N] [--duration S] [--clients N]
 *                                 [--size B] [--out DIR] [--profile]
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { NODE_FLAGS } from '../packages/cli/src/node-flags.ts'
import { describeMachine, machineInfo } from './machine.ts'
import { profiling, type ServerProc, settle, startServer, stopAll, usage, usageDelta } from './procs.ts'
import { profileReport } from './profile.ts'
import { median, round } from './stats.ts'
import type { ChildMessage, ParentMessage, WindowResult } from './ws-client.ts'
import { parseWsArgs, WS_USAGE, type WsArgs, WsArgsError } from './ws-args.ts'
import { type WsConfigResult, type WsResults, type WsSample, wsTable, writeWsResults } from './ws-report.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(root, 'packages/cli/dist/bin.js')
const SERVERS = join(root, 'bench/servers')

interface WsConfig {
  name: string
  label: string
  start (dir: string): Promise<{ url: string, procs: ServerProc[] }>
}

const wsUrl = (p: ServerProc, path: string): string => {
  const tcp = p.addresses.find((a) => a.startsWith('tcp://'))
  if (tcp === undefined) throw new Error(`${p.name} reported no tcp address: ${p.addresses.join(' ')}`)
  return `${tcp.replace('tcp://', 'ws://')}${path}`
}

const CONFIGS: WsConfig[] = [
  {
    name: 'ws',
    label: 'ws WebSocketServer echo, one process (the ceiling)',
    start: async () => {
      const s = await startServer({ name: 'ws', command: process.execPath, args: [...NODE_FLAGS, join(SERVERS, 'ws-echo.mjs'), '0'], ready: 'listening-line' })
      return { url: wsUrl(s, '/echo'), procs: [s] }
    }
  },
  {
    name: 'ferry',
    label: 'ferry front → ferry app (native, unix, --threads 2), echo in the worker pool',
    start: async (dir) => {
      const app = await startServer({
        name: 'app',
        command: process.execPath,
        args: [...NODE_FLAGS, CLI, 'app', join(SERVERS, 'ws-echo-handler.mjs'), '--listen', `unix:${join(dir, 'app.sock')}`, '--threads', '2', '--graceful-timeout', '1'],
        cwd: root,
        ready: 'listening-line'
      })
      try {
        const front = await startServer({
          name: 'front',
          command: process.execPath,
          args: [...NODE_FLAGS, CLI, 'front', '--listen', '127.0.0.1:0', '--no-access-log', '--upstream', app.addresses[0]!],
          cwd: root,
          ready: 'listening-line'
        })
        return { url: wsUrl(front, '/echo'), procs: [front, app] }
      } catch (err) {
        await app.stop()
        throw err
      }
    }
  }
]

/** read + write syscalls of a process so far (all its threads: /proc/<pid>/io of the leader sums them). */
function syscalls (pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/io`, 'utf8')
    return Number(/syscr: (\d+)/.exec(s)?.[1] ?? 0) + Number(/syscw: (\d+)/.exec(s)?.[1] ?? 0)
  } catch {
    return Number.NaN
  }
}

/** The generator child: spawn, wait for its clients, and hand back a typed message channel. */
function startGenerator (url: string, clients: number, size: number): { child: ChildProcess, next: () => Promise<ChildMessage>, send: (m: ParentMessage) => void } {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/ws-client.ts'), url, String(clients), String(size)], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const queue: ChildMessage[] = []
  const waiters: ((m: ChildMessage) => void)[] = []
  let exitError: Error | null = null
  const rejecters: ((e: Error) => void)[] = []
  child.on('message', (m: ChildMessage) => {
    const w = waiters.shift()
    rejecters.shift()
    if (w !== undefined) w(m)
    else queue.push(m)
  })
  child.once('exit', (code, signal) => {
    exitError = new Error(`the load generator exited (${signal ?? code}) before it reported`)
    for (const r of rejecters.splice(0)) r(exitError)
    waiters.length = 0
  })
  return {
    child,
    send: (m) => { child.send(m) },
    next: () => {
      const m = queue.shift()
      if (m !== undefined) return Promise.resolve(m)
      if (exitError !== null) return Promise.reject(exitError)
      return new Promise((resolve, reject) => { waiters.push(resolve); rejecters.push(reject) })
    }
  }
}

interface Load { clients: number, size: number, seconds: number, warmup: number }

async function measureOnce (cfg: WsConfig, a: Load, roundNo: number): Promise<WsSample> {
  const dir = mkdtempSync(join(tmpdir(), `ferry-bench-ws-${cfg.name}-`))
  let procs: ServerProc[] = []
  let gen: ReturnType<typeof startGenerator> | null = null
  try {
    const running = await cfg.start(dir)
    procs = running.procs
    await settle(procs)
    gen = startGenerator(running.url, a.clients, a.size)
    const ready = await gen.next()
    if (ready.type !== 'ready') throw new Error(`unexpected ${ready.type} from the load generator`)
    if (ready.connected === 0) throw new Error(`no client could connect: ${ready.firstError}`)
    const genProc = { name: 'generator', pid: gen.child.pid!, addresses: [], stop: async () => {}, output: () => '' }
    gen.send({ type: 'run' })
    await sleep(a.warmup * 1000)
    const before = usage([...procs, genProc])
    const sysBefore = procs.map((p) => syscalls(p.pid))
    gen.send({ type: 'start' })
    await sleep(a.seconds * 1000)
    const delta = usageDelta(before, usage([...procs, genProc]))
    const sysAfter = procs.map((p) => syscalls(p.pid))
    gen.send({ type: 'stop' })
    const r = (await gen.next()) as { type: 'result' } & WindowResult
    if (r.type !== 'result') throw new Error(`unexpected ${(r as ChildMessage).type} from the load generator`)
    const perMsg = (cpuS: number): number => (r.messages > 0 ? round(cpuS * 1e6 / r.messages, 1) : Number.NaN)
    const cpuUsByProc: Record<string, number> = {}
    let serverCpu = 0
    for (const p of procs) {
      const cpu = delta.get(p.name)?.cpuS ?? 0
      serverCpu += cpu
      cpuUsByProc[p.name] = perMsg(cpu)
    }
    return {
      round: roundNo,
      msgsPerS: round(r.messages / r.seconds, 1),
      messages: r.messages,
      p50ms: round(r.p50ms, 3),
      p99ms: round(r.p99ms, 3),
      errors: r.errors,
      firstError: r.firstError,
      cpuUs: perMsg(serverCpu),
      cpuUsByProc,
      generatorCpuUs: perMsg(delta.get('generator')?.cpuS ?? 0),
      syscallsByProc: Object.fromEntries(procs.map((p, i) => [p.name, r.messages > 0 ? round((sysAfter[i]! - sysBefore[i]!) / r.messages, 2) : Number.NaN]))
    }
  } finally {
    if (gen !== null && gen.child.exitCode === null && gen.child.signalCode === null) {
      gen.child.kill('SIGKILL')
    }
    await Promise.all(procs.map((p) => p.stop()))
    rmSync(dir, { recursive: true, force: true })
  }
}

function summarize (cfg: WsConfig, samples: WsSample[], skipped: string | null): WsConfigResult {
  const m = (f: (s: WsSample) => number): number => median(samples.map(f))
  const messages = samples.reduce((n, s) => n + s.messages, 0)
  const errors = samples.reduce((n, s) => n + s.errors, 0)
  if (skipped === null && errors > 0) {
    const first = samples.find((s) => s.firstError !== null)?.firstError ?? ''
    skipped = `${errors} error(s) (first: ${first})${errors > messages * 0.01 ? ': figures not comparable' : ''}`
  }
  const procs = new Set(samples.flatMap((s) => Object.keys(s.cpuUsByProc)))
  return {
    name: cfg.name,
    label: cfg.label,
    skipped,
    samples,
    msgsPerS: round(m((s) => s.msgsPerS), 1),
    p50ms: round(m((s) => s.p50ms), 3),
    p99ms: round(m((s) => s.p99ms), 3),
    errors,
    cpuUs: round(m((s) => s.cpuUs), 1),
    cpuUsByProc: Object.fromEntries([...procs].map((p) => [p, round(m((s) => s.cpuUsByProc[p] ?? 0), 1)])),
    generatorCpuUs: round(m((s) => s.generatorCpuUs), 1),
    syscallsByProc: Object.fromEntries([...procs].map((p) => [p, round(m((s) => s.syscallsByProc[p] ?? 0), 2)])),
    ratio: null,
    roundRatios: [],
    cpuRatio: null
  }
}

async function profileOnce (a: WsArgs, seconds: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-ws-profiles-'))
  console.log(`\n# profile: one ${seconds} s round per configuration with --cpu-prof on the servers\n`)
  for (const cfg of CONFIGS) {
    profiling.dir = join(dir, cfg.name)
    try {
      const s = await measureOnce({ ...cfg, start: (d) => cfg.start(d).finally(() => { profiling.dir = null }) }, { clients: a.clients, size: a.size, seconds, warmup: 1 }, 1)
      console.log(`${cfg.name.padEnd(6)} ${Math.round(s.msgsPerS)} msgs/s (profiled: slower than unprofiled)  p99 ${s.p99ms} ms  errors ${s.errors}`)
    } finally {
      profiling.dir = null
    }
  }
  for (const cfg of CONFIGS) console.log(`\n## ${cfg.name}: top self time (whole process life; busy = samples not idle)\n${profileReport(join(dir, cfg.name), 15)}`)
  console.log(`\nprofiles (open in Chrome DevTools): ${dir}`)
}

async function main (): Promise<void> {
  let a: WsArgs
  try {
    a = parseWsArgs(process.argv.slice(2), root)
  } catch (err) {
    if (!(err instanceof WsArgsError)) throw err
    console.error(`${err.message}\n\n${WS_USAGE}`)
    process.exitCode = 2
    return
  }
  if (a.help) {
    console.log(WS_USAGE)
    return
  }
  if (!existsSync(CLI)) {
    console.error(`${relative(process.cwd(), CLI)} missing — run \`npx tsc -b\` first`)
    process.exitCode = 1
    return
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the servers`)
      stopAll().finally(() => process.exit(130))
    })
  }
  const machine = machineInfo()
  console.log(`machine: ${describeMachine(machine)}`)
  const rounds = a.rounds > 0 ? a.rounds : a.quick ? 2 : 5
  const seconds = a.duration > 0 ? a.duration : a.quick ? 2 : 5
  const warmup = a.quick ? 1 : 2
  try {
    if (a.profile) {
      await profileOnce(a, a.duration > 0 ? a.duration : 5)
      return
    }
    const warnings: string[] = []
    if (machine.cores < 4) {
      warnings.push(`only ${machine.cores} cores: the load generator (${a.clients} ws clients in one Node process) shares them with the servers, so absolute msgs/s and latency are low and noisy — compare the ratio (interleaved rounds), not the absolute figures`)
    }
    for (const w of warnings) console.log(`warning: ${w}`)
    console.log(`\n# WebSockets: ${a.size}-byte binary echo, ${a.clients} clients in a closed loop, ${rounds} interleaved round(s) of ${seconds} s + ${warmup} s warm-up\n`)
    const samples = new Map<string, WsSample[]>(CONFIGS.map((c) => [c.name, []]))
    const skipped = new Map<string, string>()
    for (let r = 1; r <= rounds; r++) {
      for (const cfg of CONFIGS) {
        if (skipped.has(cfg.name)) continue
        try {
          const s = await measureOnce(cfg, { clients: a.clients, size: a.size, seconds, warmup }, r)
          samples.get(cfg.name)!.push(s)
          const tiers = Object.entries(s.cpuUsByProc).map(([k, v]) => `${k} ${v}`).join(' + ')
          console.log(`round ${r}/${rounds} ${cfg.name.padEnd(6)} ${String(Math.round(s.msgsPerS)).padStart(7)} msgs/s  p50 ${s.p50ms} ms  p99 ${s.p99ms} ms  errors ${s.errors}  cpu ${s.cpuUs} µs/msg (${tiers})  generator ${s.generatorCpuUs} µs/msg  syscalls/msg ${Object.entries(s.syscallsByProc).map(([k, v]) => `${k} ${v}`).join(' + ')}`)
        } catch (err) {
          const first = String((err as Error).message).split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(0, 3).join(' · ')
          skipped.set(cfg.name, `failed in round ${r}: ${first}`)
          console.log(`skip ${cfg.name}: failed in round ${r}: ${first}`)
        }
      }
    }
    const configs = CONFIGS.map((c) => summarize(c, samples.get(c.name)!, skipped.get(c.name) ?? null))
    const base = configs[0]!
    const ferry = configs[1]!
    if (base.samples.length > 0 && ferry.samples.length > 0) {
      ferry.ratio = round(ferry.msgsPerS / base.msgsPerS, 3)
      for (const s of ferry.samples) {
        const b = base.samples.find((x) => x.round === s.round)
        if (b !== undefined && b.msgsPerS > 0) ferry.roundRatios.push(round(s.msgsPerS / b.msgsPerS, 3))
      }
      base.ratio = 1
      base.cpuRatio = 1
      if (base.cpuUs > 0) ferry.cpuRatio = round(ferry.cpuUs / base.cpuUs, 2)
    }
    const results: WsResults = {
      date: new Date().toISOString(),
      machine,
      generator: `${a.clients} ws clients (ws package) in one Node child process, closed loop, ${a.size}-byte binary messages`,
      clients: a.clients,
      size: a.size,
      rounds,
      seconds,
      warmupSeconds: warmup,
      warnings,
      configs
    }
    console.log(`\n${wsTable(results)}\n`)
    if (configs.some((c) => c.samples.length > 0)) {
      const files = writeWsResults(a.outDir, results)
      console.log(`results: ${files.map((f) => relative(process.cwd(), f)).join(', ')}`)
    } else {
      console.log('no configuration ran: the stored WebSocket results are left as they were')
    }
  } finally {
    await stopAll()
  }
}

await main()
