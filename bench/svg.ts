/**
 * The end-to-end chart, hand-written SVG (no dependency): one row per configuration, a bar
 * for its median req/s (with its ratio to fastify direct) and, on a log scale to the right,
 * a whisker from p50 to p99 latency.
 */

export interface ChartRow {
  label: string
  rps: number
  ratio: number | null
  p50ms: number
  p99ms: number
  /** Drawn in the accent colour (ferry's own configurations). */
  highlight: boolean
}

export function escapeXml (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

const LABEL_W = 430
const BAR_W = 330
const GAP = 50
const LAT_W = 230
const ROW_H = 24
const TOP = 56
const BOTTOM = 40
const WIDTH = LABEL_W + BAR_W + GAP + LAT_W + 20

function niceCeil (v: number): number {
  if (!(v > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(v))
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p
  return 10 * p
}

export function renderChart (title: string, subtitle: string, rows: readonly ChartRow[]): string {
  const height = TOP + rows.length * ROW_H + BOTTOM
  const maxRps = niceCeil(Math.max(1, ...rows.map((r) => r.rps)))
  const finite = rows.flatMap((r) => [r.p50ms, r.p99ms]).filter((v) => Number.isFinite(v) && v > 0)
  const latMin = 10 ** Math.floor(Math.log10(Math.min(1, ...finite)))
  const latMax = 10 ** Math.ceil(Math.log10(Math.max(10, ...finite)))
  const barX = LABEL_W
  const latX = LABEL_W + BAR_W + GAP
  const lx = (ms: number): number => latX + (Math.log10(ms / latMin) / Math.log10(latMax / latMin)) * LAT_W
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">`)
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="10" y="20" font-size="15" font-weight="bold">${escapeXml(title)}</text>`)
  out.push(`<text x="10" y="38" fill="#555555">${escapeXml(subtitle)}</text>`)
  // axes and grid
  const axisY = TOP + rows.length * ROW_H
  for (let i = 0; i <= 4; i++) {
    const x = barX + (BAR_W * i) / 4
    out.push(`<line x1="${x}" y1="${TOP - 4}" x2="${x}" y2="${axisY}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${axisY + 14}" text-anchor="${i === 4 ? 'end' : 'middle'}" fill="#555555">${Math.round((maxRps * i) / 4)}</text>`)
  }
  out.push(`<text x="${barX + BAR_W / 2}" y="${axisY + 30}" text-anchor="middle" fill="#333333">req/s (median)</text>`)
  for (let d = latMin; d <= latMax; d *= 10) {
    const x = lx(d)
    out.push(`<line x1="${x}" y1="${TOP - 4}" x2="${x}" y2="${axisY}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x}" y="${axisY + 14}" text-anchor="middle" fill="#555555">${d >= 1 ? d : d.toFixed(2)}</text>`)
  }
  out.push(`<text x="${latX + LAT_W / 2}" y="${axisY + 30}" text-anchor="middle" fill="#333333">latency ms, p50 ● — p99 | (log)</text>`)
  rows.forEach((r, i) => {
    const y = TOP + i * ROW_H
    const mid = y + ROW_H / 2
    out.push(`<text x="${LABEL_W - 8}" y="${mid + 4}" text-anchor="end">${escapeXml(r.label)}</text>`)
    const w = Math.max(0, (r.rps / maxRps) * BAR_W)
    out.push(`<rect x="${barX}" y="${y + 4}" width="${w.toFixed(1)}" height="${ROW_H - 8}" fill="${r.highlight ? '#2f6fb3' : '#9aa5b1'}"/>`)
    const ratio = r.ratio === null ? '' : ` (${r.ratio.toFixed(2)}×)`
    out.push(`<text x="${(barX + w + 4).toFixed(1)}" y="${mid + 4}" fill="#222222">${Math.round(r.rps)}${ratio}</text>`)
    if (Number.isFinite(r.p50ms) && Number.isFinite(r.p99ms) && r.p50ms > 0 && r.p99ms > 0) {
      const x50 = lx(r.p50ms)
      const x99 = lx(r.p99ms)
      out.push(`<line x1="${x50.toFixed(1)}" y1="${mid}" x2="${x99.toFixed(1)}" y2="${mid}" stroke="#444444" stroke-width="1.5"/>`)
      out.push(`<line x1="${x99.toFixed(1)}" y1="${mid - 5}" x2="${x99.toFixed(1)}" y2="${mid + 5}" stroke="#444444" stroke-width="1.5"/>`)
      out.push(`<circle cx="${x50.toFixed(1)}" cy="${mid}" r="3.5" fill="#d9480f"/>`)
    }
  })
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
