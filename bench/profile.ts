/**
 * `--profile`: the Node servers of each measured configuration run with --cpu-prof; this
 * reads the .cpuprofile files they leave (one per process and worker thread) and lists the
 * functions with the most self time — where the CPU per request goes. Profiles cover the
 * process's whole life (start-up and warm-up included); busy share excludes idle samples.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

interface CpuProfile {
  nodes: { id: number, callFrame: { functionName: string, url: string, lineNumber: number } }[]
  samples: number[]
}

export interface ProfileSummary {
  file: string
  busySamples: number
  idleSamples: number
  top: { name: string, share: number }[]
}

function frameName (cf: CpuProfile['nodes'][number]['callFrame']): string {
  const where = cf.url.replace(/^file:\/\//, '').replace(/^.*\/(packages|node_modules|bench)\//, '$1/')
  return `${cf.functionName || '(anonymous)'}${where === '' ? '' : ` ${where}:${cf.lineNumber + 1}`}`
}

export function summarizeProfile (file: string, topN = 12): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const counts = new Map<number, number>()
  for (const id of p.samples) counts.set(id, (counts.get(id) ?? 0) + 1)
  const self = new Map<string, number>()
  let busy = 0
  let idle = 0
  for (const [id, c] of counts) {
    const cf = byId.get(id)!.callFrame
    if (cf.functionName === '(idle)') {
      idle += c
      continue
    }
    const k = frameName(cf)
    self.set(k, (self.get(k) ?? 0) + c)
    busy += c
  }
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, topN).map(([name, c]) => ({ name, share: busy === 0 ? 0 : c / busy }))
  return { file, busySamples: busy, idleSamples: idle, top }
}

/** Every profile under `dir` (one folder per server), summarized as text. */
export function profileReport (dir: string, topN = 12): string {
  if (!existsSync(dir)) return `no profiles in ${dir}`
  const lines: string[] = []
  for (const server of readdirSync(dir).sort()) {
    const files = readdirSync(join(dir, server)).filter((f) => f.endsWith('.cpuprofile')).sort()
    for (const f of files) {
      const s = summarizeProfile(join(dir, server, f), topN)
      const total = s.busySamples + s.idleSamples
      lines.push(`${server} ${relative(dir, s.file)}: busy ${total === 0 ? 0 : Math.round(s.busySamples / total * 100)}% of samples`)
      for (const t of s.top) lines.push(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.name}`)
    }
  }
  return lines.join('\n')
}
