/**
 * Stream ids are never reused, so one connection between a front and a node carries at most
 * 2^30 requests (a day at 12k req/s) and then refuses new ones. What happens at that end of
 * the id space, reached by starting there (SessionOptions.firstStreamId; the front's
 * FERRY_FIRST_STREAM_ID): the session opens exactly the ids left and then refuses with
 * FERRY_ERR_GOAWAY; a front drops such a connection, logs it, holds the requests that find the
 * node without one and opens a new connection — no request fails, even with `--sessions 1`.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { test } from 'node:test'
import { type FerryError, Session } from '@ferry/protocol'
import { head, request } from '../app-server/client.ts'
import { startFerry, tempDir } from '../helpers/proc.ts'

const MAX_STREAM_ID = 0x7fffffff

test('firstStreamId must be an odd id', () => {
  for (const bad of [0, 2, MAX_STREAM_ID + 2, 1.5]) {
    assert.throws(() => new Session(new PassThrough(), { role: 'client', firstStreamId: bad }), /firstStreamId must be an odd integer/)
  }
})

test('a client session at the end of the id space: the last ids work, then FERRY_ERR_GOAWAY', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const sock = join(tmp.dir, 'app.sock')
  const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', `unix:${sock}`, '--threads', '1'])
  t.after(() => app.stop())
  const socket = net.connect(sock)
  const session = new Session(socket, { role: 'client', agent: 'test', firstStreamId: MAX_STREAM_ID - 4 })
  t.after(() => session.destroy())
  session.on('error', () => {})
  await new Promise((resolve, reject) => {
    session.once('ready', resolve)
    session.once('error', reject)
  })
  assert.equal(session.streamIdsLeft, 3)
  for (let i = 0; i < 3; i++) {
    const r = await request(session, head('/text'))
    assert.equal(r.status, 200)
  }
  assert.equal(session.streamIdsLeft, 0)
  assert.throws(() => session.request(head('/text'), true), (err: FerryError) => err.code === 'FERRY_ERR_GOAWAY' && /stream ids exhausted/.test(err.message))
})

for (const [name, appArgs, frontArgs] of [
  ['--sessions 1', ['--threads', '1'], ['--sessions', '1']],
  ['--direct 2 (the threads\' own connections)', ['--threads', '1', '--direct', '2'], []]
] as const) {
  test(`${name}: connections that run out of stream ids are replaced and no request fails`, async (t) => {
    const tmp = tempDir()
    t.after(() => tmp.cleanup())
    const sock = join(tmp.dir, 'app.sock')
    const app = await startFerry(['app', 'test/fixtures/handlers/basic.ts', '--listen', `unix:${sock}`, ...appArgs])
    t.after(() => app.stop())
    // each connection of the front starts 600 ids before the end
    const ids = 600
    const front = await startFerry(['front', '--listen', '127.0.0.1:0', '--no-access-log', ...frontArgs, '--upstream', `unix:${sock}`],
      { env: { ...process.env, FERRY_FIRST_STREAM_ID: String(MAX_STREAM_ID - 2 * (ids - 1)) } })
    t.after(() => front.stop())
    const origin = front.addresses[0]!.replace('tcp://', 'http://')
    const statuses = new Map<number, number>()
    const total = 3000
    for (let sent = 0; sent < total; sent += 25) {
      const replies = await Promise.all(Array.from({ length: 25 }, async () => {
        const r = await fetch(`${origin}/text`)
        await r.arrayBuffer()
        return r.status
      }))
      for (const s of replies) statuses.set(s, (statuses.get(s) ?? 0) + 1)
    }
    assert.deepEqual(Object.fromEntries(statuses), { 200: total }, 'every request answered 200')
    const exhausted = front.logs.filter((l) => l.msg === 'upstream connection ran out of stream ids; a new one replaces it')
    assert.ok(exhausted.length >= Math.floor(total / ids) - 1, `${exhausted.length} connections ran out`)
  })
}
