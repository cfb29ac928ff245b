/**
 * Smoke test of the end-to-end harness's pieces: wrk output parsing, the SVG writer, server
 * start/measure/stop through /proc, and one tiny run of the fastify-direct configuration.
 * Structure only — never timing.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import { type ConfigResult, type E2eResults, e2eTable, pairedRatio, roundRatioRange, runE2e, type Sample, targetChecks } from '../../bench/e2e.ts'
import { defaultGenerator, parseDuration, parseWrk } from '../../bench/load.ts'
import { machineInfo } from '../../bench/machine.ts'
import { startServer, usage } from '../../bench/procs.ts'
import { readLatest, writeLatest } from '../../bench/results.ts'
import { profileReport, summarizeProfile } from '../../bench/profile.ts'
import { renderChart } from '../../bench/svg.ts'

const root = resolve(import.meta.dirname, '../..')

const WRK_OUTPUT = `Running 2s test @ http://127.0.0.1:32899/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.54ms    4.36ms  40.34ms   85.76%
    Req/Sec    10.11k     4.51k   16.72k    55.00%
  Latency Distribution
     50%  812.00us
     75%    6.84ms
     90%   11.31ms
     99%    1.02s
  20189 requests in 2.01s, 3.37MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  10045.50
Transfer/sec:      1.68MB
`

test('wrk output: requests, seconds, p50/p99 in any unit, errors', () => {
  const r = parseWrk(WRK_OUTPUT)
  assert.equal(r.requests, 20189)
  assert.equal(r.seconds, 2.01)
  assert.equal(r.p50ms, 0.812)
  assert.equal(r.p99ms, 1020)
  assert.equal(r.errors, 3 + 1 + 2 + 7)
  assert.equal(parseDuration('1.5m'), 90000)
  assert.ok(Number.isNaN(parseDuration('fast')))
  assert.throws(() => parseWrk('wrk: connection refused'), /not understood/)
})

/** Every element closed in order: a tiny well-formedness check for the SVG we write. */
function assertWellFormed (xml: string): string[] {
  const stack: string[] = []
  const names: string[] = []
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m
    names.push(name!)
    if (self === '/') continue
    if (close === '/') assert.equal(stack.pop(), name)
    else stack.push(name!)
  }
  assert.deepEqual(stack, [])
  assert.doesNotMatch(xml.replace(/<[^>]*>/g, ''), /[<>]|&(?!amp;|lt;|gt;|quot;)/)
  return names
}

test('ratios: each round against the baseline\'s same round; the table shows the lowest and highest', () => {
  const rounds = (...rps: number[]): Sample[] => rps.map((v) => ({ rps: v }) as Sample)
  const base = rounds(40000, 30000, 20000)
  assert.deepEqual(roundRatioRange(rounds(20000, 24000, 15000), base), [0.5, 0.8])
  assert.equal(roundRatioRange(rounds(20000), rounds(40000)), null)
  // the median of the rounds' ratios (0.5, 0.8, 0.75), not the ratio of the medians (20000 / 30000)
  assert.equal(pairedRatio(rounds(20000, 24000, 15000), base), 0.75)
  assert.equal(pairedRatio(rounds(20000), rounds(40000)), 0.5)
  const cfg = (name: string, rps: number, ratio: number, ratioRange: [number, number] | null): ConfigResult => ({
    name, label: name, workload: 'hello', baseline: 'fastify', skipped: null, samples: rounds(rps), rps, p50ms: 1, p99ms: 2, errors: 0,
    cpuUs: 30, cpuUsByProc: { x: 30 }, hopBytes: 200, switches: 0.1, switchesByProc: { x: 0.1 }, waitUs: 1, waitUsByProc: { x: 1 },
    ratio, ratioRange, framingNs: null, framingShare: null
  })
  const table = e2eTable({ configs: [cfg('fastify', 30000, 1, [1, 1]), cfg('ferry-unix', 20000, 0.67, [0.5, 0.8]), cfg('one-round', 10000, 0.33, null)] } as E2eResults)
  assert.match(table, /\| fastify \(`fastify`\) \| 30000 \| 1\.00 \|/)
  assert.match(table, /\| ferry-unix \(`ferry-unix`\) \| 20000 \| 0\.67 \(0\.50–0\.80\) \|/)
  assert.match(table, /\| one-round \(`one-round`\) \| 10000 \| 0\.33 \|/)
})

test('svg: well-formed, one bar and one whisker per row, labels escaped', () => {
  const svg = renderChart('t <&>', 'sub', [
    { label: 'fastify <direct> & co', rps: 39000, ratio: 1, p50ms: 1.2, p99ms: 9.5, highlight: false },
    { label: 'ferry unix', rps: 29000, ratio: 0.74, p50ms: 1.6, p99ms: 14, highlight: true },
    { label: 'no latency', rps: 10, ratio: null, p50ms: Number.NaN, p99ms: Number.NaN, highlight: false }
  ])
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="\d+" height="\d+"/)
  assert.ok(svg.trimEnd().endsWith('</svg>'))
  const names = assertWellFormed(svg)
  assert.equal(names.filter((n) => n === 'circle').length, 2)
  assert.equal(names.filter((n) => n === 'rect').length, 1 + 3)
  assert.ok(svg.includes('fastify &lt;direct&gt; &amp; co'))
  assert.ok(svg.includes('29000 (0.74×)'))
})

test('procs: a server starts, its CPU and I/O are read from /proc, stop leaves no process', async (t) => {
  const p = await startServer({ name: 'fastify', command: process.execPath, args: [join(root, 'bench/servers/fastify-hello.mjs'), '0'], ready: 'listening-line' })
  t.after(() => p.stop())
  assert.match(p.addresses[0]!, /^tcp:\/\/127\.0\.0\.1:\d+$/)
  const res = await fetch(p.addresses[0]!.replace('tcp://', 'http://'))
  assert.equal(res.status, 200)
  assert.equal(await res.text(), 'hello world')
  const u = usage([p]).get('fastify')!
  assert.ok(u.cpuS > 0)
  assert.ok(u.readBytes > 0 && u.writeBytes > 0)
  await p.stop()
  assert.throws(() => process.kill(p.pid, 0), { code: 'ESRCH' })
})

test('e2e: one short round of fastify direct gives a full, comparable result', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-e2e-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const lines: string[] = []
  const machine = machineInfo()
  const r = await runE2e(machine, {
    root,
    rounds: 1,
    seconds: 1,
    warmupSeconds: 0,
    connections: 4,
    only: ['fastify'],
    generator: defaultGenerator(),
    codec: null,
    log: (l) => lines.push(l)
  })
  assert.equal(r.configs.length, 1)
  const c = r.configs[0]!
  assert.equal(c.skipped, null)
  assert.equal(c.samples.length, 1)
  assert.equal(c.errors, 0)
  assert.equal(c.ratio, 1)
  assert.ok(c.rps > 0 && c.cpuUs > 0 && c.hopBytes > 0)
  // 4 connections leave the event loop idle between requests: it blocks, and is counted
  assert.ok(c.switches > 0 && Number.isFinite(c.switches), `switches ${c.switches}`)
  assert.deepEqual(Object.keys(c.switchesByProc), ['fastify'])
  assert.equal(c.switchesByProc.fastify, c.switches)
  const pre = c.samples[0]!.preemptionsByProc.fastify
  assert.ok(pre !== undefined && pre >= 0 && pre <= c.switches + 0.01, `preemptions ${pre} of ${c.switches} switches per request`)
  if (existsSync('/proc/self/schedstat')) {
    // the server's threads wait for a CPU now and then (wrk or the test runner holds one)
    assert.ok(c.waitUs !== null && c.waitUs >= 0 && Number.isFinite(c.waitUs), `run-queue wait ${c.waitUs}`)
    assert.deepEqual(c.waitUsByProc, { fastify: c.waitUs })
  } else {
    assert.equal(c.waitUs, null)
  }
  assert.ok(c.p50ms > 0 && c.p99ms >= c.p50ms)
  assert.deepEqual(Object.keys(c.cpuUsByProc), ['fastify'])
  assert.match(lines[0]!, /^round 1\/1 fastify/)
  if (machine.cores < 4) assert.match(r.warnings[0]!, /shares them with the servers/)
  writeLatest(dir, { e2e: { machine, results: r } })
  assert.equal(readLatest(dir).e2e?.results.configs[0]?.name, 'fastify')
  assertWellFormed(readFileSync(join(dir, 'latest.svg'), 'utf8'))
  const md = readFileSync(join(dir, 'latest.md'), 'utf8')
  assert.match(md, /\| fastify direct \(`fastify`\) \| \d+ \| 1\.00 \|/)
  assert.match(md, /\| switches\/req \(tiers\) \| run-queue wait µs\/req \(tiers\) \|/)
  await assert.rejects(runE2e(machine, { ...{ root, rounds: 1, seconds: 1, warmupSeconds: 0, connections: 1, generator: defaultGenerator(), codec: null, log: () => {} }, only: ['nope'] }), /unknown configuration/)
})

/** A configuration's result from three rounds (each round's req/s, CPU µs per request and p99 ms), for the target checks. */
function roundsResult (name: string, rps: number[], cpuUs: number[], p99s: number[]): ConfigResult {
  return {
    name, label: name, workload: 'hello', baseline: 'fastify', skipped: null, rps: 0, p50ms: 1, p99ms: [...p99s].sort((a, b) => a - b)[1]!, errors: 0,
    samples: rps.map((v, i) => ({ rps: v, cpuUs: cpuUs[i], p99ms: p99s[i] }) as Sample),
    cpuUs: cpuUs[1]!, cpuUsByProc: {}, hopBytes: 0, switches: 0, switchesByProc: {}, waitUs: null, waitUsByProc: {}, ratio: null, ratioRange: null, framingNs: null, framingShare: null
  }
}

test('targets: judged round by round', () => {
  const cfg = (name: string, rps: number[], cpuUs: number[]): ConfigResult => roundsResult(name, rps, cpuUs, [5, 5, 5])
  // the rounds' ratios: 0.9, 0.7, 0.76 → median 0.76
  const checks = targetChecks([
    cfg('fastify', [40000, 20000, 36000], [25, 50, 28]),
    cfg('ferry-unix', [36000, 14000, 27360], [35, 90, 47.6]),
    cfg('reply-from', [12000, 7000, 9000], [100, 150, 130])
  ])
  const find = (start: string): { pass: boolean, detail: string } => checks.find((c) => c.name.startsWith(start))!
  assert.equal(find('ferry unix (pool) ≥ 0.75× fastify').pass, true)
  assert.equal(find('ferry unix (pool) ≥ 0.75× fastify').detail, '0.76× (rounds 0.70–0.90×)')
  // CPU: 1.4, 1.8, 1.7 → 1.7 misses
  assert.equal(find('ferry unix (pool) CPU').pass, false)
  assert.match(find('ferry unix (pool) CPU').detail, /\(1\.7×\)$/)
  // reply-from: 3, 2, 3.04 → 3 passes
  assert.equal(find('ferry unix (pool) ≥ 3× reply-from').pass, true)
})

test('targets: the p99 against nginx + uWSGI judged round by round', () => {
  const cfg = (name: string, p99s: number[]): ConfigResult => roundsResult(name, [20000, 20000, 20000], [40, 40, 40], p99s)
  // medians 5.1 against 5.0 would miss; the rounds, side by side: 0.96, 0.95, 1.06 → 0.96 passes
  const pass = targetChecks([cfg('ferry-unix', [4.8, 6.3, 5.1]), cfg('nginx-uwsgi', [5.0, 6.6, 4.8])])
  const p99 = (checks: ReturnType<typeof targetChecks>): { pass: boolean, detail: string } => checks.find((c) => c.name === 'ferry unix (pool) p99 ≤ nginx + uWSGI p99')!
  assert.equal(p99(pass).pass, true)
  assert.equal(p99(pass).detail, '5.1 ms vs 5 ms (0.96×, rounds 0.95–1.06×)')
  // and the other way: medians 4.9 against 5.0 would pass; the rounds 1.10, 1.05, 0.94 → 1.05 misses
  const miss = targetChecks([cfg('ferry-unix', [5.5, 4.0, 4.9]), cfg('nginx-uwsgi', [5.0, 3.8, 5.2])])
  assert.equal(p99(miss).pass, false)
  assert.equal(p99(miss).detail, '4.9 ms vs 5 ms (1.05×, rounds 0.94–1.10×)')
})

test('profile: self time per function, idle samples left out of the busy share', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-prof-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'front'))
  const file = join(dir, 'front', 'CPU.1.cpuprofile')
  writeFileSync(file, JSON.stringify({
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
      { id: 2, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
      { id: 3, callFrame: { functionName: 'encodeRequestHead', url: 'file:///x/packages/protocol/dist/head.js', lineNumber: 72 } },
      { id: 4, callFrame: { functionName: 'writev', url: '', lineNumber: -1 } }
    ],
    samples: [2, 2, 3, 3, 3, 4, 2, 2]
  }))
  const s = summarizeProfile(file)
  assert.equal(s.busySamples, 4)
  assert.equal(s.idleSamples, 4)
  assert.deepEqual(s.top, [
    { name: 'encodeRequestHead packages/protocol/dist/head.js:73', share: 0.75 },
    { name: 'writev', share: 0.25 }
  ])
  const text = profileReport(dir)
  assert.match(text, /^front front\/CPU\.1\.cpuprofile: busy 50% of samples/)
  assert.match(text, / 75\.0% {2}encodeRequestHead/)
})
