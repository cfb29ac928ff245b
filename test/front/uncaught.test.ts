/**
 * An exception or a rejection nothing handles in the front process — here raised by a
 * --config module's own async code, the user code a front runs — ends the front with one
 * fatal JSON line (code FERRY_ERR_FRONT_UNCAUGHT, origin, the error) and exit status 1,
 * not Node's bare stack on stderr; the lines logged before it are not lost.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, startFront, startNode, tempDir } from './helpers.ts'

const hooks = fileHooks(after)

/** A config module that raises `kind` (outside any request) when the front gets SIGUSR2. */
function faultyConfig (dir: string, upstream: string): string {
  const file = join(dir, 'ferry.config.mjs')
  writeFileSync(file, `process.on('SIGUSR2', () => {
  if (process.env.FAULT === 'reject') Promise.reject(new Error('config promise rejected'))
  else setImmediate(() => { throw new Error('config timer threw') })
})
export default { upstreams: [${JSON.stringify(upstream)}] }
`)
  return file
}

for (const [kind, origin, message] of [
  ['throw', 'uncaughtException', 'config timer threw'],
  ['reject', 'unhandledRejection', 'config promise rejected']
] as const) {
  test(`front: an unhandled ${kind === 'throw' ? 'exception' : 'rejection'} → one fatal line with FERRY_ERR_FRONT_UNCAUGHT, exit 1`, async () => {
    const dir = tempDir(hooks)
    const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n1')
    const front = await startFront(hooks, ['--config', faultyConfig(dir, node.addresses[0]!)], { FAULT: kind })
    const url = baseUrl(front.addresses[0]!)
    assert.equal((await fetchRaw(`${url}/hello`)).status, 200)
    front.child.kill('SIGUSR2')
    assert.equal(await front.exited, 1)
    const fatal = front.lines.filter((l) => l.level === 60)
    assert.equal(fatal.length, 1, JSON.stringify(front.lines))
    const line = fatal[0]!
    assert.equal(line.code, 'FERRY_ERR_FRONT_UNCAUGHT')
    assert.equal(line.origin, origin)
    assert.equal(line.name, 'ferry-front')
    assert.equal(line.pid, front.child.pid)
    assert.equal((line.err as { message?: string }).message, message)
    assert.match(String((line.err as { stack?: string }).stack), /ferry\.config\.mjs/)
    // the fatal line is the last one, after the lines logged before it (listening …)
    assert.equal(front.lines.at(-1), line)
    assert.ok(front.lines.some((l) => l.msg === 'listening'))
    assert.doesNotMatch(front.stderr(), new RegExp(message))
    // as written: each key once (a strict JSON parser rejects a repeated one)
    const raw = front.stdout().trimEnd().split('\n').at(-1)!
    for (const key of ['level', 'pid', 'name', 'code', 'origin', 'err', 'msg']) {
      assert.equal(raw.split(`"${key}":`).length - 1, 1, `${key} once in ${raw}`)
    }
  })
}
