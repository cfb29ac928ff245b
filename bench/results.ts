/**
 * bench/results/latest.{json,md,svg}: every run replaces the parts it measured (codec, e2e)
 * and keeps the other part of the previous run, each part stamped with its own date and
 * machine, so `npm run bench -- codec` does not erase the end-to-end figures.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type CodecResults, codecSummary, codecTable } from './codec.ts'
import { comparable, type E2eResults, e2eMarkdown } from './e2e.ts'
import { describeMachine, type MachineInfo } from './machine.ts'
import { renderChart } from './svg.ts'

export interface LatestResults {
  codec?: { machine: MachineInfo, results: CodecResults }
  e2e?: { machine: MachineInfo, results: E2eResults }
}

export function e2eChart (r: E2eResults): string {
  const rows = r.configs.filter(comparable).map((c) => ({
    label: c.label,
    rps: c.rps,
    ratio: c.ratio,
    p50ms: c.p50ms,
    p99ms: c.p99ms,
    highlight: c.name.includes('ferry')
  }))
  const subtitle = `${r.generator} -c${r.connections} · ${r.rounds} interleaved round(s) × ${r.seconds} s · ${describeMachine(r.machine)} · ${r.date.slice(0, 10)}`
  return renderChart('ferry end to end: req/s (× fastify direct) and latency p50–p99', subtitle, rows)
}

export function readLatest (outDir: string): LatestResults {
  const file = join(outDir, 'latest.json')
  if (!existsSync(file)) return {}
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LatestResults
  } catch {
    return {}
  }
}

export function renderMarkdown (latest: LatestResults): string {
  const parts = ['# ferry benchmark results', '', 'Written by `npm run bench` (bench/index.ts). Rerun: see bench/README.md.', '']
  if (latest.e2e !== undefined) {
    parts.push('## End to end', '', `Machine: ${describeMachine(latest.e2e.machine)}`, '', '![req/s and latency](latest.svg)', '', e2eMarkdown(latest.e2e.results), '')
  }
  if (latest.codec !== undefined) {
    const r = latest.codec.results
    parts.push(
      '## Codec micro-bench', '',
      `Machine: ${describeMachine(latest.codec.machine)} · ${r.date}`, '',
      `Median of ${r.options.rounds} timed rounds per figure; ns per operation; "head+framing B" is every byte on the wire except the body.`, '',
      codecTable(r), '',
      codecSummary(r), ''
    )
  }
  return parts.join('\n')
}

/** Merges `update` into the stored results and rewrites latest.json, latest.md and latest.svg. */
export function writeLatest (outDir: string, update: LatestResults): LatestResults {
  mkdirSync(outDir, { recursive: true })
  const latest = { ...readLatest(outDir), ...update }
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(latest, null, 2)}\n`)
  writeFileSync(join(outDir, 'latest.md'), renderMarkdown(latest))
  if (latest.e2e !== undefined) writeFileSync(join(outDir, 'latest.svg'), e2eChart(latest.e2e.results))
  return latest
}
