/**
 * The WebSocket bench's figures and how they are written: bench/results/ws-latest.json (every
 * sample) and ws-latest.md (the table, the machine, the warnings). A run replaces both.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describeMachine, type MachineInfo } from './machine.ts'
import { median } from './stats.ts'

export interface WsSample {
  round: number
  /** Echoes completed per second. */
  msgsPerS: number
  messages: number
  p50ms: number
  p99ms: number
  errors: number
  firstError: string | null
  /** Server CPU µs per message, every server process together (all threads). */
  cpuUs: number
  /** Per server process (name → µs per message). */
  cpuUsByProc: Record<string, number>
  /** The load generator's own CPU µs per message (not in cpuUs). */
  generatorCpuUs: number
  /** read + write syscalls per message of each server process (/proc/<pid>/io syscr + syscw). */
  syscallsByProc: Record<string, number>
}

export interface WsConfigResult {
  name: string
  label: string
  /** Why the configuration stopped running, or its errors; null when clean. */
  skipped: string | null
  samples: WsSample[]
  msgsPerS: number
  p50ms: number
  p99ms: number
  errors: number
  cpuUs: number
  cpuUsByProc: Record<string, number>
  generatorCpuUs: number
  syscallsByProc: Record<string, number>
  /** Median msgs/s ÷ the ws ceiling's median msgs/s. */
  ratio: number | null
  /** msgs/s ÷ the ceiling's in the same round, per round. */
  roundRatios: number[]
  /** Server CPU µs per message ÷ the ceiling's (medians). */
  cpuRatio: number | null
}

export interface WsResults {
  date: string
  machine: MachineInfo
  generator: string
  clients: number
  size: number
  rounds: number
  seconds: number
  warmupSeconds: number
  warnings: string[]
  configs: WsConfigResult[]
}

const fmt = (v: number | null, digits = 0): string => (v === null || Number.isNaN(v) ? '–' : digits === 0 ? String(Math.round(v)) : v.toFixed(digits))

/** Text safe inside a markdown table cell. */
const cell = (s: string): string => s.replace(/\|/g, '/').replace(/\n/g, ' ')

export function wsTable (r: WsResults): string {
  const lines = [
    '| configuration | msgs/s | × ws | p50 ms | p99 ms | errors | server CPU µs/msg (processes) | CPU × ws | syscalls/msg | generator CPU µs/msg |',
    '|---|--:|--:|--:|--:|--:|---|--:|---|--:|'
  ]
  for (const c of r.configs) {
    if (c.samples.length === 0) {
      lines.push(`| ${c.label} (\`${c.name}\`) | skipped: ${cell(c.skipped ?? '')} | | | | | | | | |`)
      continue
    }
    const procs = Object.entries(c.cpuUsByProc).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(' + ')
    const sys = Object.entries(c.syscallsByProc).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(' + ')
    const note = c.skipped === null ? '' : ` ⚠ ${cell(c.skipped)}`
    lines.push(`| ${c.label} (\`${c.name}\`)${note} | ${fmt(c.msgsPerS)} | ${fmt(c.ratio, 2)} | ${fmt(c.p50ms, 2)} | ${fmt(c.p99ms, 2)} | ${c.errors} | ${fmt(c.cpuUs, 1)} (${procs}) | ${fmt(c.cpuRatio, 2)} | ${sys} | ${fmt(c.generatorCpuUs, 1)} |`)
  }
  return lines.join('\n')
}

export function wsMarkdown (r: WsResults): string {
  const lines = [
    '# ferry WebSocket benchmark results',
    '',
    'Written by `npm run bench:ws` (bench/ws.ts). Rerun: see bench/README.md, "WebSockets".',
    '',
    `Machine: ${describeMachine(r.machine)}`,
    '',
    `${r.date} · ${r.generator} · ${r.rounds} interleaved round(s) of ${r.seconds} s (+ ${r.warmupSeconds} s warm-up) per configuration, medians`,
    ''
  ]
  for (const w of r.warnings) lines.push(`> **Warning:** ${w}`, '')
  lines.push(wsTable(r), '')
  for (const c of r.configs) {
    if (c.roundRatios.length > 0) {
      lines.push(`Per-round msgs/s ratio ${c.name} ÷ ws (same round): ${c.roundRatios.map((v) => v.toFixed(2)).join(', ')} (median ${median(c.roundRatios).toFixed(2)}).`, '')
    }
  }
  lines.push(
    '"msgs/s": echoes completed per second (each client sends its next message when the previous one\'s echo arrives). ' +
    '"× ws": median msgs/s ÷ the single-process ws server\'s; "CPU × ws": server CPU per message ÷ the ws server\'s — steadier than msgs/s when other work shares the cores. p50/p99: round trip of one message as the client measures it. ' +
    '"server CPU µs/msg": user+system CPU of every server process (all threads, from /proc/<pid>/stat) during the measured window ÷ echoes; ' +
    'ferry counts both tiers. "syscalls/msg": read + write syscalls per echo of each server process (/proc/<pid>/io), the batching figure. "generator CPU": the client process\'s, for scale — on a 2-core box it competes with the servers.',
    ''
  )
  return lines.join('\n')
}

/** Writes ws-latest.json and ws-latest.md under `outDir`; returns their paths. */
export function writeWsResults (outDir: string, r: WsResults): string[] {
  mkdirSync(outDir, { recursive: true })
  const json = join(outDir, 'ws-latest.json')
  const md = join(outDir, 'ws-latest.md')
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`)
  writeFileSync(md, wsMarkdown(r))
  return [json, md]
}
