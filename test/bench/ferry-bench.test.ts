/**
 * `ferry bench`: the command line's door to the source tree's benchmark harness
 * (bench/index.ts, what `npm run bench` runs), with the same arguments, run in the caller's
 * directory. Checks what it prints and writes, never timing.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { tempDir } from '../helpers/proc.ts'

const BIN = new URL('../../packages/cli/dist/bin.js', import.meta.url).pathname
const tmp = tempDir('ferry-bench-cli-')
after(() => tmp.cleanup())

function ferry (args: string[], cwd = tmp.dir): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 60000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('ferry --help lists bench; ferry help bench is the short help', () => {
  const top = ferry(['--help'])
  assert.equal(top.status, 0)
  assert.match(top.stdout, /^ {2}bench {3}benchmark: /m)
  const short = ferry(['help', 'bench'])
  assert.equal(short.status, 0)
  assert.match(short.stdout, /^ferry bench — the benchmark harness of ferry's source tree/)
})

test('ferry bench --help is the harness\'s own usage, naming both forms', () => {
  const r = ferry(['bench', '--help'])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /^usage: npm run bench -- \[codec\|e2e\|all\] \[options\]\n {7}ferry bench \[codec\|e2e\|all\] \[options\]\n/)
  for (const flag of ['--quick', '--only', '--connections', '--loadgen', '--out']) assert.ok(r.stdout.includes(flag), flag)
})

test('ferry bench codec: runs the codec micro-bench and writes its results where --out says, relative to the caller', () => {
  const r = ferry(['bench', 'codec', '--quick', '--rounds', '1', '--out', 'results'])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /# codec micro-bench/)
  const file = join(tmp.dir, 'results', 'latest.json')
  assert.ok(existsSync(file), 'latest.json in the caller\'s ./results')
  assert.ok(existsSync(join(tmp.dir, 'results', 'latest.md')))
  const latest = JSON.parse(readFileSync(file, 'utf8')) as { codec: { results: { rows: { codec: string, case: string, headBytes: number, totalNs: number }[] } } }
  const row = latest.codec.results.rows.find((x) => x.codec === 'native' && x.case === 'minimal-get')
  assert.ok(row !== undefined, 'a native minimal GET row')
  assert.equal(row.headBytes, 103)
  assert.ok(row.totalNs > 0)
})

test('a bad argument: the harness\'s error and usage, exit 2', () => {
  const r = ferry(['bench', '--rounds', 'many'])
  assert.equal(r.status, 2)
  assert.match(r.stderr + r.stdout, /--rounds/)
  assert.match(r.stderr + r.stdout, /usage: npm run bench/)
})
