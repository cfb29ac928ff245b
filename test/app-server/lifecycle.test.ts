/**
 * Lifecycle of `ferry app`: SIGTERM drains in-flight requests (GOAWAY, listeners closed,
 * socket file removed, exit 0) and SIGHUP reloads the handler into a fresh pool under load
 * with zero failed requests.
 */
import assert from 'node:assert/strict'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import type { Session } from '@ferry/protocol'
import { startFerry, tempDir } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

test('SIGTERM: GOAWAY, no new streams, in-flight requests finish, socket file removed, exit 0', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const sock = join(tmp.dir, 'app.sock')
  const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', `unix:${sock}`, '--threads', '2', '--graceful-timeout', '10'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const goaway = new Promise((resolve) => s.once('goaway', resolve))
  const inflight = Array.from({ length: 20 }, (_, i) => request(s, head(`/slow?ms=600&i=${i}`)))
  const upload = s.request(head('/sha', { method: 'POST', bodyLength: 6 }), false)
  const uploadReply = new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = []
    upload.onData = (c) => parts.push(Buffer.from(c))
    upload.onEnd = () => resolve(Buffer.concat(parts).toString())
    upload.onError = reject
  })
  upload.write(Buffer.from('abc'))
  await new Promise((r) => setTimeout(r, 200))
  app.proc.kill('SIGTERM')
  await goaway
  assert.throws(() => s.request(head('/text'), true), { code: 'FERRY_ERR_GOAWAY' })
  // the request still sending its body can finish it
  upload.end(Buffer.from('def'))
  const replies = await Promise.all(inflight)
  for (const r of replies) assert.equal(r.status, 200)
  assert.equal(JSON.parse(await uploadReply).bytes, 6)
  assert.equal(await app.exited, 0)
  assert.equal(existsSync(sock), false)
  assert.ok(app.logs.some((l) => l.msg === 'stopped' && l.drained === true))
})

test('SIGTERM with requests past --graceful-timeout still exits 0, after the grace period', async (t) => {
  const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', 'tcp://127.0.0.1:0', '--threads', '1', '--graceful-timeout', '0.5'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const slow = request(s, head('/slow?ms=5000')).then((r) => r.status, (e: { code: string }) => e.code)
  await new Promise((r) => setTimeout(r, 100))
  app.proc.kill('SIGTERM')
  assert.equal(await app.exited, 0)
  const outcome = await slow
  assert.ok(outcome === 503 || outcome === 'FERRY_ERR_SESSION_CLOSED', String(outcome))
  assert.ok(app.logs.some((l) => l.msg === 'stopped' && l.drained === false))
})

test('SIGHUP under load: responses switch to the new code, zero failed requests', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const file = join(tmp.dir, 'handler.ts')
  const write = (version: string): void => writeFileSync(file, `
const version: string = '${version}'
export default {
  async fetch (request: Request): Promise<Response> {
    await new Promise((r) => setTimeout(r, 5))
    return new Response(version)
  }
}
`)
  write('v1')
  const app = await startFerry(['app', file, '--listen', 'tcp://127.0.0.1:0', '--threads', '2'])
  t.after(() => app.stop())
  const sessions: Session[] = [await connect(app.addresses[0]!), await connect(app.addresses[0]!)]
  t.after(() => { for (const s of sessions) s.destroy() })
  const seen: string[] = []
  const failures: unknown[] = []
  let stop = false
  let reloadedAt = -1
  const worker = async (s: Session): Promise<void> => {
    while (!stop) {
      const batch = await Promise.all(Array.from({ length: 20 }, () =>
        request(s, head('/')).then((r) => {
          if (r.status !== 200) failures.push(r.status)
          else seen.push(r.body.toString())
        }, (err: unknown) => { failures.push(err) })))
      void batch
      if (reloadedAt >= 0 && seen.length - reloadedAt > 400 && seen[seen.length - 1] === 'v2') stop = true
    }
  }
  const load = Promise.all(sessions.map(worker))
  while (seen.length < 200) await new Promise((r) => setTimeout(r, 20))
  write('v2')
  reloadedAt = seen.length
  app.proc.kill('SIGHUP')
  const deadline = setTimeout(() => { stop = true }, 15000)
  await load
  clearTimeout(deadline)
  assert.deepEqual(failures, [])
  assert.equal(seen[0], 'v1')
  assert.equal(seen[seen.length - 1], 'v2')
  // once v2 answers, v1 does not come back (the old pool only finishes what it had)
  const firstV2 = seen.indexOf('v2')
  assert.ok(firstV2 > 0)
  assert.ok(seen.slice(firstV2 + 100).every((v) => v === 'v2'))
  await app.waitForLog((l) => l.msg === 'old pool drained')
})
