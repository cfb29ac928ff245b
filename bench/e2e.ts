/**
 * End-to-end harness: every configuration of configs.ts under the same load, interleaved
 * (round 1: A B C …, round 2: A B C …) so drift and other load on the machine spread over
 * all of them; per configuration the median of its rounds. Each round starts the
 * configuration's servers fresh, waits until they are idle, warms them up, then measures req/s, p50/p99, errors, the
 * CPU time of every server process (÷ requests = CPU µs per request, all tiers) and the
 * bytes through the innermost server's sockets per request.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { CodecResults } from './codec.ts'
import { type Config, configurations } from './configs.ts'
import { type LoadResult, runLoad } from './load.ts'
import type { MachineInfo } from './machine.ts'
import { profiling, settle, usage, usageDelta } from './procs.ts'
import { profileReport } from './profile.ts'
import { median, round } from './stats.ts'

export interface E2eOptions {
  root: string
  rounds: number
  seconds: number
  warmupSeconds: number
  connections: number
  only: string[]
  generator: 'wrk' | 'autocannon'
  /** Codec figures for the framing share (from this run or a quick codec bench). */
  codec: CodecResults | null
  /** When set: Node servers run with --cpu-prof, profiles land in <profileRoot>/<config>-r<round>/ and are summarized. */
  profileRoot?: string | null
  log: (line: string) => void
}

export interface Sample {
  round: number
  rps: number
  p50ms: number
  p99ms: number
  errors: number
  requests: number
  /** CPU µs per request, all server processes together. */
  cpuUs: number
  /** CPU µs per request of each tier (process name → µs). */
  cpuUsByProc: Record<string, number>
  /** Bytes read + written through the innermost server's syscalls, per request. */
  hopBytes: number
  /** Context switches per request, every thread of every server process together. */
  switches: number
  /** The same per tier (process name → switches per request). */
  switchesByProc: Record<string, number>
  /** The involuntary switches among them (a runnable thread preempted), per request, per tier. */
  preemptionsByProc: Record<string, number>
  /**
   * µs per request that server threads were runnable but waited for a CPU (all threads, all
   * processes; null where the kernel keeps no schedstat). Requests wait with them.
   */
  waitUs: number | null
  /** The same per tier. */
  waitUsByProc: Record<string, number>
}

export interface ConfigResult {
  name: string
  label: string
  workload: string
  baseline: string
  /** Set when the configuration did not run (or stopped running): why. */
  skipped: string | null
  samples: Sample[]
  rps: number
  p50ms: number
  p99ms: number
  errors: number
  cpuUs: number
  cpuUsByProc: Record<string, number>
  hopBytes: number
  switches: number
  switchesByProc: Record<string, number>
  waitUs: number | null
  waitUsByProc: Record<string, number>
  /**
   * req/s ÷ the baseline's, round by round (the two ran back to back in each round), the
   * median of those ratios.
   */
  ratio: number | null
  /**
   * The lowest and highest per-round ratio (this round's req/s ÷ the baseline's in the same
   * round): how far the machine moved the figure during the run. Null with one round.
   */
  ratioRange: [number, number] | null
  /** Codec encode+decode per request, both tiers (codec micro-bench), ns. */
  framingNs: number | null
  /** framingNs as a share of cpuUs. */
  framingShare: number | null
}

export interface E2eResults {
  date: string
  machine: MachineInfo
  generator: string
  connections: number
  rounds: number
  seconds: number
  warnings: string[]
  configs: ConfigResult[]
  checks: { name: string, pass: boolean, detail: string }[]
}

/** Encode+decode ns for one exchange of `workload` over `codec`, from the codec bench. */
function framingNs (codec: CodecResults | null, cfg: Config): number | null {
  if (codec === null || cfg.framing === '') return null
  const reqCase = cfg.workload.name === 'hello' ? 'minimal-get' : cfg.workload.name === 'browser' ? 'browser-get' : null
  if (reqCase === null) return null
  const req = codec.rows.find((r) => r.codec === cfg.framing && r.case === reqCase)
  const res = codec.rows.find((r) => r.codec === cfg.framing && r.case === 'hello-response')
  if (req === undefined || res === undefined) return null
  return req.totalNs + res.totalNs
}

async function measureOnce (cfg: Config, o: E2eOptions, roundNo: number): Promise<Sample> {
  const dir = mkdtempSync(join(tmpdir(), `ferry-bench-${cfg.name}-`))
  const profileDir = o.profileRoot ? join(o.profileRoot, `${cfg.name}-r${roundNo}`) : null
  try {
    profiling.dir = profileDir
    const running = await cfg.start(dir).finally(() => { profiling.dir = null })
    try {
      await settle(running.procs)
      const load = { origin: running.origin, workload: cfg.workload, connections: o.connections, generator: o.generator, tmpDir: dir }
      if (o.warmupSeconds > 0) await runLoad({ ...load, seconds: o.warmupSeconds })
      const before = usage(running.procs)
      const r: LoadResult = await runLoad({ ...load, seconds: o.seconds })
      const delta = usageDelta(before, usage(running.procs))
      const n = Math.max(r.requests, 1)
      const cpuUsByProc: Record<string, number> = {}
      let cpuS = 0
      let switches = 0
      const switchesByProc: Record<string, number> = {}
      const preemptionsByProc: Record<string, number> = {}
      let waitS: number | null = 0
      const waitUsByProc: Record<string, number> = {}
      for (const [name, u] of delta) {
        switches += u.switches
        waitS = waitS === null || u.waitS === null ? null : waitS + u.waitS
        // several app nodes: one entry "app×N" with their sum
        const key = /^app\d+$/.test(name) ? `app×${running.hop.length}` : name
        cpuUsByProc[key] = (cpuUsByProc[key] ?? 0) + u.cpuS * 1e6 / n
        switchesByProc[key] = (switchesByProc[key] ?? 0) + u.switches / n
        preemptionsByProc[key] = (preemptionsByProc[key] ?? 0) + u.preemptions / n
        if (u.waitS !== null) waitUsByProc[key] = (waitUsByProc[key] ?? 0) + u.waitS * 1e6 / n
        cpuS += u.cpuS
      }
      let hop = 0
      for (const p of running.hop) {
        const u = delta.get(p.name)
        if (u !== undefined) hop += u.readBytes + u.writeBytes
      }
      return {
        round: roundNo,
        rps: round1(r.rps),
        p50ms: round(r.p50ms, 2),
        p99ms: round(r.p99ms, 2),
        errors: r.errors,
        requests: r.requests,
        cpuUs: round1(cpuS * 1e6 / n),
        cpuUsByProc: Object.fromEntries(Object.entries(cpuUsByProc).map(([k, v]) => [k, round1(v)])),
        hopBytes: Math.round(hop / n),
        switches: round(switches / n, 2),
        switchesByProc: Object.fromEntries(Object.entries(switchesByProc).map(([k, v]) => [k, round(v, 2)])),
        preemptionsByProc: Object.fromEntries(Object.entries(preemptionsByProc).map(([k, v]) => [k, round(v, 3)])),
        waitUs: waitS === null ? null : round1(waitS * 1e6 / n),
        waitUsByProc: waitS === null ? {} : Object.fromEntries(Object.entries(waitUsByProc).map(([k, v]) => [k, round1(v)]))
      }
    } finally {
      await Promise.all(running.procs.map((p) => p.stop()))
      if (profileDir !== null) o.log(`profiles of ${cfg.name}, round ${roundNo} (${profileDir}):\n${profileReport(profileDir)}`)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const round1 = (v: number): number => round(v, 1)

function summarize (cfg: Config, samples: Sample[], skipped: string | null, codec: CodecResults | null): ConfigResult {
  const m = (f: (s: Sample) => number): number => (samples.length === 0 ? Number.NaN : median(samples.map(f)))
  const procs = new Set(samples.flatMap((s) => Object.keys(s.cpuUsByProc)))
  const cpuUs = m((s) => s.cpuUs)
  const fns = framingNs(codec, cfg)
  const requests = samples.reduce((a, s) => a + s.requests, 0)
  const errors = samples.reduce((a, s) => a + s.errors, 0)
  if (skipped === null && requests > 0 && errors > requests * 0.01) {
    // a configuration that answers errors fast is not fast: keep its figures, flag them, leave them out of ratios and checks
    skipped = `${round(errors / requests * 100, 1)}% of the responses were errors: figures not comparable`
  }
  return {
    name: cfg.name,
    label: cfg.label,
    workload: cfg.workload.name,
    baseline: cfg.baseline,
    skipped,
    samples,
    rps: round1(m((s) => s.rps)),
    p50ms: round(m((s) => s.p50ms), 2),
    p99ms: round(m((s) => s.p99ms), 2),
    errors,
    cpuUs: round1(cpuUs),
    cpuUsByProc: Object.fromEntries([...procs].map((p) => [p, round1(m((s) => s.cpuUsByProc[p] ?? 0))])),
    hopBytes: Math.round(m((s) => s.hopBytes)),
    switches: round(m((s) => s.switches), 2),
    switchesByProc: Object.fromEntries([...procs].map((p) => [p, round(m((s) => s.switchesByProc[p] ?? 0), 2)])),
    waitUs: samples.some((s) => s.waitUs == null) ? null : round1(m((s) => s.waitUs!)),
    waitUsByProc: samples.some((s) => s.waitUs == null) ? {} : Object.fromEntries([...procs].map((p) => [p, round1(m((s) => s.waitUsByProc[p] ?? 0))])),
    ratio: null,
    ratioRange: null,
    framingNs: fns,
    framingShare: fns === null || !(cpuUs > 0) ? null : round(fns / 1000 / cpuUs, 4)
  }
}

export async function runE2e (machine: MachineInfo, o: E2eOptions): Promise<E2eResults> {
  const all = configurations({ root: o.root })
  const unknown = o.only.filter((n) => !all.some((c) => c.name === n))
  if (unknown.length > 0) throw new Error(`unknown configuration(s) ${unknown.join(', ')}; known: ${all.map((c) => c.name).join(', ')}`)
  const chosen = o.only.length > 0 ? all.filter((c) => o.only.includes(c.name)) : all
  const warnings: string[] = []
  if (machine.cores < 4) {
    warnings.push(`only ${machine.cores} cores: the load generator (${o.generator}) shares them with the servers, so absolute req/s and latency are low and noisy — compare the ratios (interleaved rounds), not the absolute figures`)
  }
  const skipped = new Map<string, string>()
  for (const c of chosen) {
    const why = c.unavailable()
    if (why !== null) skipped.set(c.name, why)
  }
  for (const [name, why] of skipped) o.log(`skip ${name}: ${why}`)
  const samples = new Map<string, Sample[]>(chosen.map((c) => [c.name, []]))
  for (let r = 1; r <= o.rounds; r++) {
    for (const cfg of chosen) {
      if (skipped.has(cfg.name)) continue
      try {
        const s = await measureOnce(cfg, o, r)
        samples.get(cfg.name)!.push(s)
        o.log(`round ${r}/${o.rounds} ${cfg.name.padEnd(20)} ${String(Math.round(s.rps)).padStart(7)} req/s  p50 ${s.p50ms} ms  p99 ${s.p99ms} ms  errors ${s.errors}  cpu ${s.cpuUs} µs/req  switches ${s.switches}/req  run-queue wait ${s.waitUs ?? '–'} µs/req  preempted ${Object.entries(s.preemptionsByProc).map(([k, v]) => `${k} ${v}`).join(' + ')}/req  hop ${s.hopBytes} B/req`)
      } catch (err) {
        const first = String((err as Error).message).split('\n').map((l) => l.trim()).filter((l) => l !== '').slice(0, 3).join(' · ')
        skipped.set(cfg.name, `failed in round ${r}: ${first}`)
        o.log(`skip ${cfg.name}: failed in round ${r}: ${first}`)
      }
    }
  }
  const configs = chosen.map((c) => summarize(c, samples.get(c.name)!, skipped.get(c.name) ?? null, o.codec))
  for (const c of configs) {
    const base = configs.find((b) => b.name === c.baseline)
    if (base !== undefined && comparable(base) && comparable(c)) {
      c.ratio = pairedRatio(c.samples, base.samples)
      c.ratioRange = roundRatioRange(c.samples, base.samples)
    }
  }
  return {
    date: new Date().toISOString(),
    machine,
    generator: o.generator,
    connections: o.connections,
    rounds: o.rounds,
    seconds: o.seconds,
    warnings,
    configs,
    checks: targetChecks(configs)
  }
}

/**
 * Per-round ratios of two configurations that ran every round (sample i of each is round i):
 * `of` (req/s unless given) of this round ÷ the baseline's in the same round.
 */
function roundRatios (samples: Sample[], base: Sample[], of: (s: Sample) => number = (s) => s.rps): number[] {
  const n = Math.min(samples.length, base.length)
  const ratios: number[] = []
  for (let i = 0; i < n; i++) ratios.push(of(samples[i]!) / of(base[i]!))
  return ratios
}

/** The lowest and highest per-round ratio (req/s unless `of` says), rounded to 0.01; null with fewer than two rounds. */
export function roundRatioRange (samples: Sample[], base: Sample[], of: (s: Sample) => number = (s) => s.rps): [number, number] | null {
  const ratios = roundRatios(samples, base, of)
  if (ratios.length < 2) return null
  return [round(Math.min(...ratios), 2), round(Math.max(...ratios), 2)]
}

/**
 * The median of the per-round ratios, rounded to 0.001. Each round's pair ran minutes apart
 * at most, on the same machine; a ratio of the medians could pair one's fast round with the
 * other's slow one (the box's speed changes within seconds: bench/README.md).
 */
export function pairedRatio (samples: Sample[], base: Sample[], of: (s: Sample) => number = (s) => s.rps): number {
  return round(median(roundRatios(samples, base, of)), 3)
}

/** Ran every round without a flagged problem. */
export function comparable (c: ConfigResult): boolean {
  return c.samples.length > 0 && c.skipped === null
}

/**
 * The issue's targets, evaluated on this run (only where both sides ran cleanly), for each
 * ferry configuration that serves the handler off the main thread: the worker pool
 * (`ferry-unix`) and two or one --direct threads (`ferry-direct`, `ferry-direct-1`). Framing
 * is the pool's (the same codec work on all).
 */
export function targetChecks (configs: readonly ConfigResult[]): E2eResults['checks'] {
  const get = (n: string): ConfigResult | undefined => {
    const c = configs.find((x) => x.name === n)
    return c !== undefined && comparable(c) ? c : undefined
  }
  const out: E2eResults['checks'] = []
  const fastify = get('fastify')
  const replyFrom = get('reply-from')
  const uwsgi = get('nginx-uwsgi')
  /** ' (rounds 0.49–0.71×)': the per-round ratios' spread, with two rounds or more. */
  const spread = (c: ConfigResult, base: ConfigResult): string => {
    const r = roundRatioRange(c.samples, base.samples)
    return r === null ? '' : ` (rounds ${r[0].toFixed(2)}–${r[1].toFixed(2)}×)`
  }
  for (const [name, who] of [['ferry-unix', 'ferry unix (pool)'], ['ferry-direct', 'ferry unix (--direct 2)'], ['ferry-direct-1', 'ferry unix (--direct 1)']] as const) {
    const ferry = get(name)
    if (ferry === undefined) continue
    // every comparison round by round (the median of the rounds' ratios): each pair ran in the same round
    if (fastify !== undefined) {
      const r = pairedRatio(ferry.samples, fastify.samples)
      out.push({ name: `${who} ≥ 0.75× fastify direct (req/s)`, pass: r >= 0.75, detail: `${round(r, 2)}×${spread(ferry, fastify)}` })
      const cpu = pairedRatio(ferry.samples, fastify.samples, (s) => s.cpuUs)
      out.push({ name: `${who} CPU per request (both tiers) ≤ 1.6× fastify direct`, pass: cpu <= 1.6, detail: `${ferry.cpuUs} µs vs ${fastify.cpuUs} µs (${round(cpu, 2)}×)` })
    }
    if (replyFrom !== undefined) {
      const r = pairedRatio(ferry.samples, replyFrom.samples)
      out.push({ name: `${who} ≥ 3× reply-from (req/s)`, pass: r >= 3, detail: `${round(r, 2)}×${spread(ferry, replyFrom)}` })
    }
    if (uwsgi !== undefined) {
      const r = pairedRatio(ferry.samples, uwsgi.samples)
      out.push({ name: `${who} ≥ nginx + uWSGI (req/s)`, pass: r >= 1, detail: `${Math.round(ferry.rps)} vs ${Math.round(uwsgi.rps)} req/s (${round(r, 2)}×${spread(ferry, uwsgi)})` })
      // the p99 too: each round's p99 ÷ nginx + uWSGI's in that round, the median of those
      const p = pairedRatio(ferry.samples, uwsgi.samples, (s) => s.p99ms)
      const pr = roundRatioRange(ferry.samples, uwsgi.samples, (s) => s.p99ms)
      const prs = pr === null ? '' : `, rounds ${pr[0].toFixed(2)}–${pr[1].toFixed(2)}×`
      out.push({ name: `${who} p99 ≤ nginx + uWSGI p99`, pass: p <= 1, detail: `${ferry.p99ms} ms vs ${uwsgi.p99ms} ms (${round(p, 2)}×${prs})` })
    }
    if (name === 'ferry-unix' && ferry.framingShare !== null) {
      out.push({ name: 'framing (encode+decode, both tiers) ≤ 5% of CPU per request', pass: ferry.framingShare <= 0.05, detail: `${round(ferry.framingNs! / 1000, 2)} µs of ${ferry.cpuUs} µs = ${round(ferry.framingShare * 100, 1)}%` })
    }
  }
  return out
}

const fmt = (v: number | null, digits = 0): string => (v === null || Number.isNaN(v) ? '–' : digits === 0 ? String(Math.round(v)) : v.toFixed(digits))

/** Text safe inside a markdown table cell. */
const cell = (s: string): string => s.replace(/\|/g, '/').replace(/\n/g, ' ')

export function e2eTable (r: E2eResults): string {
  const lines = [
    '| configuration | req/s | × fastify | p50 ms | p99 ms | errors | CPU µs/req (tiers) | switches/req (tiers) | run-queue wait µs/req (tiers) | hop B/req | framing |',
    '|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|'
  ]
  for (const c of r.configs) {
    if (c.samples.length === 0) {
      lines.push(`| ${c.label} (\`${c.name}\`) | skipped: ${cell(c.skipped ?? '')} | | | | | | | | | |`)
      continue
    }
    const tiers = Object.entries(c.cpuUsByProc).map(([k, v]) => `${k} ${fmt(v)}`).join(' + ')
    const byTier = Object.entries(c.switchesByProc ?? {})
    const switchTiers = byTier.length > 1 ? ` (${byTier.map(([k, v]) => `${k} ${fmt(v, 2)}`).join(' + ')})` : ''
    const byWait = Object.entries(c.waitUsByProc ?? {})
    const waitTiers = byWait.length > 1 ? ` (${byWait.map(([k, v]) => `${k} ${fmt(v)}`).join(' + ')})` : ''
    const framing = c.framingShare === null ? '–' : `${fmt(c.framingNs! / 1000, 2)} µs = ${fmt(c.framingShare * 100, 1)}%`
    const note = c.skipped === null ? '' : ` ⚠ ${cell(c.skipped)}`
    const range = c.ratioRange === null || c.name === c.baseline ? '' : ` (${fmt(c.ratioRange[0], 2)}–${fmt(c.ratioRange[1], 2)})`
    lines.push(`| ${c.label} (\`${c.name}\`)${note} | ${fmt(c.rps)} | ${fmt(c.ratio, 2)}${range} | ${fmt(c.p50ms, 2)} | ${fmt(c.p99ms, 2)} | ${c.errors} | ${fmt(c.cpuUs)} (${tiers}) | ${fmt(c.switches ?? null, 2)}${switchTiers} | ${fmt(c.waitUs ?? null)}${waitTiers} | ${c.hopBytes} | ${framing} |`)
  }
  return lines.join('\n')
}

export function e2eMarkdown (r: E2eResults): string {
  const lines = [
    `${r.date} · ${r.generator} -c${r.connections}, ${r.rounds} interleaved round(s) of ${r.seconds} s per configuration, medians · hello world unless noted`,
    ''
  ]
  for (const w of r.warnings) lines.push(`> **Warning:** ${w}`, '')
  lines.push(e2eTable(r), '')
  lines.push(
    '"× fastify": each round\'s req/s ÷ fastify direct\'s in the same round (same workload), the median of those ratios (the target checks compare the same way, CPU included); in brackets, with two rounds or more, the lowest and highest of them — how far the machine moved the figure during the run. "CPU µs/req": user+system CPU of every server process (all threads, all workers) ÷ requests. ' +
    '"switches/req": context switches of every server thread ÷ requests — each one a thread that blocked (an idle event loop, a worker waiting for work) and was woken, or was preempted; on a VM each costs microseconds of kernel CPU that profilers of JavaScript do not show. ' +
    '"run-queue wait µs/req": time the server threads were ready to run but waited for a CPU (/proc schedstat) ÷ requests — the requests they hold wait with them (where the load generator shares the cores, how much each shape contends for them). ' +
    '"hop B/req": bytes read + written by the innermost server\'s syscalls per request (the front↔app hop for ferry; client↔server for fastify direct). ' +
    '"framing": encode+decode of request and response heads and frame headers, both tiers, from the codec micro-bench, as a share of the CPU per request.',
    ''
  )
  for (const c of r.checks) lines.push(`- ${c.pass ? 'PASS' : 'MISS'}: ${c.name} — ${c.detail}`)
  return lines.join('\n')
}
