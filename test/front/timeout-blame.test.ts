/**
 * Whom a timeout blames (nginx's rule: only failures before the response header count
 * against a node's max_fails). A response that goes quiet midway is cut with
 * FERRY_ERR_FRONT_UPSTREAM_TIMEOUT but its node stays in; a client that stops reading is cut
 * with FERRY_ERR_FRONT_CLIENT_TIMEOUT (nginx send_timeout) and the node is not blamed.
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import { startFerry, tempDir } from '../helpers/proc.ts'

const SSE_APP = join(import.meta.dirname, '../ws/fixtures/sse-app.ts')
const FAULT_APP = join(import.meta.dirname, '../faults/fixtures/fault-app.ts')

test('a response that goes quiet is cut, and its node is not ejected', { timeout: 30000 }, async (t) => {
  const tmp = tempDir('ferry-blame-')
  const a = join(tmp.dir, 'a.sock')
  const b = join(tmp.dir, 'b.sock')
  const appA = await startFerry(['app', SSE_APP, '--listen', `unix:${a}`, '--threads', '1'])
  const appB = await startFerry(['app', SSE_APP, '--listen', `unix:${b}`, '--threads', '1'])
  const front = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `unix:${a}`, '--upstream', `unix:${b}`, '--idle-timeout', '400ms'])
  t.after(async () => { await front.stop(); await appA.stop(); await appB.stop(); tmp.cleanup() })
  const base = `http://${front.addresses[0]!.replace('tcp://', '')}`
  for (let i = 0; i < 2; i++) {
    const r = await fetch(`${base}/silent?after=1`)
    await assert.rejects(r.text(), 'the quiet response is cut')
  }
  const cut = await front.waitForLog((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT')
  assert.match(String(cut.err), /idle for 400 ms/)
  // both nodes still take requests; nobody was ejected
  const served = new Set<string>()
  for (let i = 0; i < 20; i++) {
    const r = await fetch(`${base}/text`)
    assert.equal(r.status, 200)
    await r.arrayBuffer()
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  for (const l of front.logs) if (l.path === '/text' && typeof l.upstream === 'string') served.add(l.upstream)
  assert.equal(served.size, 2, `requests went to both nodes: ${[...served].join(', ')}`)
  assert.equal(front.logs.filter((l) => l.msg === 'upstream node ejected').length, 0)
})

test('a client that stops reading is cut as a client timeout; the node is not blamed', { timeout: 30000 }, async (t) => {
  const tmp = tempDir('ferry-blame-')
  const sock = join(tmp.dir, 'app.sock')
  const app = await startFerry(['app', FAULT_APP, '--listen', `unix:${sock}`, '--threads', '1'])
  const front = await startFerry(['front', '--listen', '127.0.0.1:0', '--upstream', `unix:${sock}`, '--idle-timeout', '400ms'])
  t.after(async () => { await front.stop(); await app.stop(); tmp.cleanup() })
  const [host, port] = front.addresses[0]!.replace('tcp://', '').split(':')
  const got = await new Promise<{ bytes: number, complete: boolean }>((resolve) => {
    request({ hostname: host, port: Number(port), path: '/download?mib=64' }, (res) => {
      let bytes = 0
      res.pause()
      // read nothing for 1.5 s (> the 400 ms idle timeout), then drain what is left
      setTimeout(() => {
        res.on('data', (c: Buffer) => { bytes += c.length })
        res.resume()
      }, 1500)
      res.on('close', () => resolve({ bytes, complete: res.complete }))
    }).end()
  })
  assert.equal(got.complete, false, 'the response was cut')
  assert.ok(got.bytes < 64 * 1024 * 1024)
  const line = await front.waitForLog((l) => l.code === 'FERRY_ERR_FRONT_CLIENT_TIMEOUT')
  assert.equal(line.path, '/download?mib=64')
  assert.equal(front.logs.filter((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT').length, 0)
  assert.equal(front.logs.filter((l) => l.msg === 'upstream node ejected').length, 0)
  // a client that reads slowly but keeps reading is not cut
  const r = await fetch(`http://${host}:${port}/download?mib=8`)
  const reader = r.body!.getReader()
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total % (1024 * 1024) < value.byteLength) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.equal(total, 8 * 1024 * 1024)
})
