/**
 * Scenario 6 — slow clients: slowloris connections dribbling header bytes, and clients
 * reading a big response at a fixed slow rate, beside normal keep-alive traffic. Pass: the
 * normal clients are all served (their p99 is compared with a quiet run of the same length:
 * reported, not asserted), the slow readers make progress, and the front's memory stays
 * bounded (flow control: the front does not buffer the rest of a big response).
 */
import net from 'node:net'
import { join } from 'node:path'
import { makeTempDir, removeDir } from '../../helpers/tmp.ts'
import { baseUrl, cleanup, describeFailures, Load, percentile, RssSampler, type ScenarioReport, sleep, startFront, startNode, summarize } from '../harness.ts'

export interface SlowScale {
  slowloris: number
  readers: number
  /** Size of the response the slow readers ask for. */
  readerMiB: number
  /** Read rate of each slow reader, bytes per second. */
  readerRate: number
  normalConnections: number
  durationMs: number
}

export const SLOW_SMALL: SlowScale = { slowloris: 200, readers: 10, readerMiB: 20, readerRate: 1024 * 1024, normalConnections: 4, durationMs: 4000 }
export const SLOW_FULL: SlowScale = { slowloris: 500, readers: 50, readerMiB: 100, readerRate: 1024 * 1024, normalConnections: 8, durationMs: 20000 }

export interface SlowResult {
  report: ScenarioReport
  failedDetail: string
  normalSent: number
  quietP99: number
  loadedP99: number
  /** Bytes each slow reader got. */
  readerBytes: number[]
  slowlorisOpen: number
  frontPeakMiB: number
}

function slowloris (port: number, sockets: net.Socket[]): NodeJS.Timeout {
  for (let i = 0; i < sockets.length; i++) {
    const s = net.connect(port, '127.0.0.1')
    s.on('error', () => {})
    s.write(`GET /hello HTTP/1.1\r\nHost: loris\r\nX-Loris-${i}: `)
    sockets[i] = s
  }
  return setInterval(() => {
    for (const s of sockets) if (!s.destroyed) s.write('a')
  }, 500)
}

/** A raw HTTP/1.1 GET read at `rate` bytes/s (pausing the socket between slices). */
function slowReader (port: number, path: string, rate: number, counter: { bytes: number }): net.Socket {
  const s = net.connect(port, '127.0.0.1')
  s.on('error', () => {})
  const t0 = performance.now()
  s.write(`GET ${path} HTTP/1.1\r\nHost: reader\r\n\r\n`)
  s.on('data', (d: Buffer) => {
    counter.bytes += d.length
    const ahead = counter.bytes - (rate * (performance.now() - t0)) / 1000
    if (ahead > 0) {
      s.pause()
      setTimeout(() => s.resume(), (ahead / rate) * 1000).unref()
    }
  })
  return s
}

export async function slowClients (scale: SlowScale): Promise<SlowResult> {
  const c = cleanup()
  const dir = makeTempDir('ferry-f6-')
  c.add(() => removeDir(dir))
  const rss = new RssSampler()
  c.add(() => rss.stop())
  try {
    const node = await startNode(c, dir, 'n1', ['--threads', '2'])
    const front = await startFront(c, [`unix:${join(dir, 'n1.sock')}`], ['--timeout', '120s', '--idle-timeout', '120s'])
    rss.watch('app', node.pid)
    rss.watch('front', front.pid)
    const port = Number(front.addresses[0]!.split(':').pop())
    const quiet = new Load(baseUrl(front), scale.normalConnections, () => ({ method: 'GET', path: '/hello' }))
    await sleep(Math.min(scale.durationMs, 3000))
    const quietRes = await quiet.stop()
    const loris: net.Socket[] = new Array(scale.slowloris)
    const timer = slowloris(port, loris)
    c.add(() => { clearInterval(timer); for (const s of loris) s?.destroy() })
    const counters = Array.from({ length: scale.readers }, () => ({ bytes: 0 }))
    const readers = counters.map((k) => slowReader(port, `/download?mib=${scale.readerMiB}`, scale.readerRate, k))
    c.add(() => { for (const s of readers) s.destroy() })
    await sleep(500)
    const load = new Load(baseUrl(front), scale.normalConnections, () => ({ method: 'GET', path: '/hello' }))
    await sleep(scale.durationMs)
    const res = await load.stop()
    const slowlorisOpen = loris.filter((s) => !s.destroyed).length
    const failed = (o: { status: number }): boolean => o.status !== 200
    const quietP99 = Math.round(percentile(quietRes.outcomes.map((o) => o.ms), 99) * 10) / 10
    const report = summarize('6 slow clients', `${scale.slowloris} slowloris + ${scale.readers} readers of ${scale.readerMiB} MiB at ${scale.readerRate / 1048576} MiB/s + GET ${scale.normalConnections} conns, ${scale.durationMs / 1000} s`, res, failed, rss,
      [`normal p99 ${percentile(res.outcomes.map((o) => o.ms), 99).toFixed(1)} ms vs quiet ${quietP99} ms`, `slowloris still open: ${slowlorisOpen}`, `slow readers got ${(counters.reduce((a, k) => a + k.bytes, 0) / 1048576).toFixed(1)} MiB in all`])
    return {
      report,
      failedDetail: describeFailures(res.outcomes, failed),
      normalSent: res.sent,
      quietP99,
      loadedP99: report.p99ms,
      readerBytes: counters.map((k) => k.bytes),
      slowlorisOpen,
      frontPeakMiB: rss.peaks().front ?? 0
    }
  } finally {
    await c.run()
  }
}
