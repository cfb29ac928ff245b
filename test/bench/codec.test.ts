/**
 * Smoke test of the codec micro-bench: with a tiny iteration count it runs every codec over
 * every case and produces well-formed rows (structure and exact byte counts, never timing).
 */
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { encodeRequestHead, encodeResponseHead, encodeUwsgiRequest, FRAME_HEADER_SIZE } from '@ferry/protocol'
import { ArgsError, parseArgs } from '../../bench/args.ts'
import { codecTable, runCodecBench } from '../../bench/codec.ts'
import { HELLO_RESPONSE, REQUEST_CASES } from '../../bench/fixtures.ts'
import { encodeHttp1Request, encodeHttp1Response, Http1Parser } from '../../bench/http1.ts'
import { machineInfo } from '../../bench/machine.ts'
import { readLatest, writeLatest } from '../../bench/results.ts'

test('codec bench: every codec × case gives a row with finite timings and exact wire sizes', () => {
  const r = runCodecBench({ rounds: 2, iterations: 20, warmup: 5, targetRoundMs: 1 })
  const codecs = r.codecs.map((c) => c.name)
  assert.deepEqual(codecs, ['native', 'uwsgi', 'http1', 'json'])
  const cases = [...REQUEST_CASES.map((c) => c.name), 'hello-response']
  for (const codec of codecs) {
    for (const c of cases) {
      const row = r.rows.find((x) => x.codec === codec && x.case === c)
      assert.ok(row, `row ${codec}/${c}`)
      for (const v of [row.encodeNs, row.decodeNs, row.totalNs]) assert.ok(Number.isFinite(v) && v > 0)
      assert.equal(row.totalNs, Math.round((row.encodeNs + row.decodeNs) * 10) / 10)
    }
  }
  for (const c of REQUEST_CASES) {
    const native = r.rows.find((x) => x.codec === 'native' && x.case === c.name)!
    const frames = c.body.length === 0 ? 1 : 2
    assert.equal(native.headBytes, encodeRequestHead(c.head).length + frames * FRAME_HEADER_SIZE)
    assert.equal(native.wireBytes, native.headBytes + c.body.length)
    const http1 = r.rows.find((x) => x.codec === 'http1' && x.case === c.name)!
    assert.equal(http1.headBytes, encodeHttp1Request(c.head).length)
    const uwsgi = r.rows.find((x) => x.codec === 'uwsgi' && x.case === c.name)!
    assert.equal(uwsgi.headBytes, encodeUwsgiRequest(c.head).length)
  }
  const res = r.rows.find((x) => x.codec === 'native' && x.case === 'hello-response')!
  assert.equal(res.wireBytes, encodeResponseHead(HELLO_RESPONSE.head).length + 2 * FRAME_HEADER_SIZE + HELLO_RESPONSE.body.length)
  assert.deepEqual(r.perExchange.map((e) => e.codec), codecs)
  assert.ok(r.checks.some((c) => c.name.startsWith('native encode+decode')))
  const table = codecTable(r).split('\n')
  assert.equal(table.length, 2 + r.rows.length)
})

test('HTTP/1.1 text decodes (llhttp) back to the head it was built from', () => {
  const parser = new Http1Parser('request')
  for (const c of REQUEST_CASES) {
    const { head, bodyBytes } = parser.parseRequest(Buffer.concat([encodeHttp1Request(c.head), c.body]))
    assert.equal(head.method, c.head.method)
    assert.equal(head.path, c.head.path)
    assert.equal(head.authority, c.head.authority)
    assert.equal(head.remoteAddress, c.head.remoteAddress)
    assert.equal(head.requestId, c.head.requestId)
    assert.deepEqual(head.headers.slice(0, c.head.headers.length), c.head.headers)
    assert.equal(bodyBytes, c.body.length)
  }
  const { head, bodyBytes } = new Http1Parser('response').parseResponse(Buffer.concat([encodeHttp1Response(HELLO_RESPONSE.head), HELLO_RESPONSE.body]))
  assert.equal(head.status, 200)
  assert.equal(head.bodyLength, 11)
  assert.equal(bodyBytes, 11)
})

test('results: latest.json keeps the other part, latest.md has the codec table', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const results = runCodecBench({ rounds: 1, iterations: 5, warmup: 0, targetRoundMs: 1 })
  writeLatest(dir, { codec: { machine: machineInfo(), results } })
  const latest = readLatest(dir)
  assert.equal(latest.codec?.results.rows.length, results.rows.length)
  const md = readFileSync(join(dir, 'latest.md'), 'utf8')
  assert.match(md, /## Codec micro-bench/)
  assert.match(md, /\| minimal GET \| native \|/)
})

test('args: sub-command, flags, and coded refusals', () => {
  const a = parseArgs(['e2e', '--quick', '--rounds', '4', '--duration=2', '--only', 'fastify,ferry-unix', '--connections', '10'], '/r')
  assert.equal(a.command, 'e2e')
  assert.equal(a.quick, true)
  assert.equal(a.rounds, 4)
  assert.equal(a.duration, 2)
  assert.equal(a.connections, 10)
  assert.deepEqual(a.only, ['fastify', 'ferry-unix'])
  assert.equal(a.outDir, '/r/bench/results')
  assert.equal(a.profile, false)
  assert.equal(parseArgs(['--profile'], '/r').profile, true)
  assert.throws(() => parseArgs(['--rounds', '0'], '/r'), ArgsError)
  assert.throws(() => parseArgs(['--bogus'], '/r'), ArgsError)
  assert.throws(() => parseArgs(['--loadgen', 'ab'], '/r'), ArgsError)
})
