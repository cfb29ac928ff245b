/**
 * The log destination every ferry process and worker thread writes its JSON lines to
 * (packages/app-server/src/log-stream.ts): lines are gathered and written in batches. Each
 * case runs a real child process writing to a real file and checks the bytes that land:
 * a lone line still goes out within the flush interval, a burst arrives whole and in order
 * (also when the process exits at once after it: the exit hook writes the rest), and
 * flush(cb) has the line on disk when cb runs.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tmp.ts'

const LOG_STREAM = fileURLToPath(new URL('../../packages/app-server/dist/log-stream.js', import.meta.url))
const PINO = fileURLToPath(new URL('../../node_modules/pino/pino.js', import.meta.url))

/** Runs `body` in a child with `log` (pino over logDestination(fd of `file`)); resolves with its stdout and exit code. */
async function child (file: string, body: string): Promise<{ out: string, code: number | null }> {
  const script = `
    import { openSync, readFileSync } from 'node:fs'
    import pino from ${JSON.stringify(PINO)}
    import { logDestination } from ${JSON.stringify(LOG_STREAM)}
    const fd = openSync(${JSON.stringify(file)}, 'w')
    const log = pino({ base: null, timestamp: false }, logDestination(fd))
    const lines = () => readFileSync(${JSON.stringify(file)}, 'utf8').split('\\n').filter((l) => l !== '')
    ${body}`
  const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  p.stdout.setEncoding('utf8').on('data', (d: string) => { out += d })
  const code = await new Promise<number | null>((resolve) => p.on('close', resolve))
  return { out, code }
}

test('a lone line is written within the flush interval, while the process runs', async (t) => {
  const file = join(tempDir(t), 'log.jsonl')
  const { out, code } = await child(file, `
    log.info({ n: 1 }, 'lone')
    const t0 = Date.now()
    const poll = setInterval(() => {
      const l = lines()
      if (l.length > 0) { clearInterval(poll); console.log(JSON.stringify({ ms: Date.now() - t0, line: JSON.parse(l[0]) })); process.exit(0) }
      if (Date.now() - t0 > 2000) { clearInterval(poll); console.log('none'); process.exit(1) }
    }, 10)`)
  assert.equal(code, 0, out)
  const r = JSON.parse(out) as { ms: number, line: { msg: string, n: number } }
  assert.equal(r.line.msg, 'lone')
  assert.equal(r.line.n, 1)
  assert.ok(r.ms < 1000, `written after ${r.ms} ms`)
})

test('a burst of lines arrives whole and in order, also when the process exits right after it', async (t) => {
  const file = join(tempDir(t), 'log.jsonl')
  const { code } = await child(file, `
    for (let i = 0; i < 20000; i++) log.info({ i, pad: 'é'.repeat(i % 7) }, 'burst')
    process.exit(0)`)
  assert.equal(code, 0)
  const got = readFileSync(file, 'utf8').split('\n')
  assert.equal(got.pop(), '', 'the file ends with a newline')
  assert.equal(got.length, 20000)
  got.forEach((l, i) => {
    const o = JSON.parse(l) as { i: number, pad: string, msg: string }
    assert.equal(o.i, i)
    assert.equal(o.pad, 'é'.repeat(i % 7))
    assert.equal(o.msg, 'burst')
  })
})

test('flush(cb): the line is in the file when cb runs', async (t) => {
  const file = join(tempDir(t), 'log.jsonl')
  const { out, code } = await child(file, `
    log.info('before flush')
    log.flush(() => { console.log(lines().length); process.exit(0) })`)
  assert.equal(code, 0)
  assert.equal(out.trim(), '1')
})

test('an idle destination does not wake its thread; a waiting line is still written within the interval', async (t) => {
  const file = join(tempDir(t), 'log.jsonl')
  const { out, code } = await child(file, `
    // the main thread's context switches: each time its event loop slept and was woken
    const switches = () => Number(/^voluntary_ctxt_switches:\\s+(\\d+)/m.exec(readFileSync('/proc/thread-self/status', 'utf8'))[1])
    log.info('one')
    await new Promise((resolve) => { const poll = setInterval(() => { if (lines().length === 1) { clearInterval(poll); resolve() } }, 5) })
    const before = switches()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    console.log(JSON.stringify({ idleWakes: switches() - before, lines: lines().length }))`)
  assert.equal(code, 0, out)
  const r = JSON.parse(out) as { idleWakes: number, lines: number }
  assert.equal(r.lines, 1)
  // one wake for the 1 s timer itself (a flush every 100 ms woke it ten times)
  assert.ok(r.idleWakes <= 3, `${r.idleWakes} wake-ups in 1 s of idle`)
})
