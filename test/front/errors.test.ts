/**
 * Clear answers, each with the request id in x-request-id and a FERRY_ERR_FRONT_* code:
 * 502 node unreachable, 503 + Retry-After no healthy node, 504 slow route, 413, 431.
 */
import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, type Res, sleep, startFront, startNode, tempDir } from './helpers.ts'

const hooks = fileHooks(after)

function assertError (res: Res, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString())
  const body = JSON.parse(res.body.toString()) as { code: string, requestId: string, statusCode: number }
  assert.equal(body.code, code)
  assert.equal(body.statusCode, status)
  assert.match(res.headers['x-request-id'] as string, /^[0-9a-f]+-[0-9a-z]+$/)
  assert.equal(body.requestId, res.headers['x-request-id'])
}

test('502 when the only node is unreachable', async () => {
  const dir = tempDir(hooks)
  const front = await startFront(hooks, ['--upstream', `unix:${join(dir, 'nobody.sock')}`])
  const res = await fetchRaw(`${baseUrl(front.addresses[0]!)}/x`)
  assertError(res, 502, 'FERRY_ERR_FRONT_UPSTREAM_CONNECT')
})

test('503 with Retry-After when no node is healthy', async () => {
  const dir = tempDir(hooks)
  const front = await startFront(hooks, ['--upstream', `unix:${join(dir, 'a.sock')}`, '--upstream', `tcp://127.0.0.1:1`, '--retry-after', '7'])
  await sleep(300) // both connects fail → both ejected (max_fails 1)
  const res = await fetchRaw(`${baseUrl(front.addresses[0]!)}/x`)
  assertError(res, 503, 'FERRY_ERR_FRONT_NO_HEALTHY_NODE')
  assert.equal(res.headers['retry-after'], '7')
})

test('504 on a route slower than --timeout; the node sees the cancel', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--timeout', '300ms'])
  const url = baseUrl(front.addresses[0]!)
  const res = await fetchRaw(`${url}/slow?ms=3000`)
  assertError(res, 504, 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT')
  const fast = await fetchRaw(`${url}/slow?ms=10`)
  assert.equal(fast.status, 200)
  const stats = JSON.parse((await fetchRaw(`${url}/stats`)).body.toString()) as { cancels: number }
  assert.equal(stats.cancels, 1)
})

test('413 past --max-body (declared length, and counted for chunked bodies)', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--max-body', '1k'])
  const url = baseUrl(front.addresses[0]!)
  assertError(await fetchRaw(`${url}/echo`, { method: 'POST', body: Buffer.alloc(2048) }), 413, 'FERRY_ERR_FRONT_BODY_TOO_LARGE')
  assertError(await fetchRaw(`${url}/echo`, { method: 'POST', body: Buffer.alloc(4096), headers: ['Host', 'x', 'Transfer-Encoding', 'chunked'] }), 413, 'FERRY_ERR_FRONT_BODY_TOO_LARGE')
  const ok = await fetchRaw(`${url}/echo`, { method: 'POST', body: Buffer.alloc(1024) })
  assert.equal(ok.status, 200)
})

test('431 past --max-header-size, with a request id', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--max-header-size', '4k'])
  const [host, port] = front.addresses[0]!.replace('tcp://', '').split(':')
  const text = await new Promise<string>((resolve, reject) => {
    const s = connect({ host, port: Number(port) })
    let data = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { data += d })
    s.on('end', () => resolve(data))
    s.on('error', reject)
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(8000)}\r\n\r\n`)
  })
  assert.match(text, /^HTTP\/1\.1 431 /)
  assert.match(text, /x-request-id: [0-9a-f]+-[0-9a-z]+\r\n/)
  assert.match(text, /"code":"FERRY_ERR_FRONT_HEAD_TOO_LARGE"/)
})

test('502 when a uwsgi node is unreachable; GET retried on a live native node', async () => {
  const dir = tempDir(hooks)
  const alone = await startFront(hooks, ['--upstream', `uwsgi+unix:${join(dir, 'nobody.sock')}`])
  assertError(await fetchRaw(`${baseUrl(alone.addresses[0]!)}/x`), 502, 'FERRY_ERR_FRONT_UPSTREAM_CONNECT')
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'live')
  const mixed = await startFront(hooks, ['--upstream', `uwsgi+unix:${join(dir, 'nobody.sock')}`, '--upstream', node.addresses[0]!])
  const url = baseUrl(mixed.addresses[0]!)
  for (let i = 0; i < 6; i++) {
    const res = await fetchRaw(`${url}/hello`)
    assert.equal(res.status, 200)
    assert.equal(res.headers['x-node'], 'live')
  }
})

test('idle timeout after the head: the response is cut and the node sees the cancel', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'n')
  const front = await startFront(hooks, ['--upstream', node.addresses[0]!, '--idle-timeout', '300ms'])
  const url = baseUrl(front.addresses[0]!)
  const outcome = await new Promise<{ status: number, body: string, error: string }>((resolve) => {
    let body = ''
    let status = 0
    const req = httpRequest(`${url}/stall`, { agent: false }, (res) => {
      status = res.statusCode!
      res.setEncoding('utf8')
      res.on('data', (d: string) => { body += d })
      res.on('error', (err) => resolve({ status, body, error: err.message }))
      res.on('end', () => resolve({ status, body, error: '' }))
    })
    req.on('error', (err) => resolve({ status, body, error: err.message }))
    req.end()
  })
  assert.equal(outcome.status, 200)
  assert.equal(outcome.body, 'first chunk\n')
  assert.notEqual(outcome.error, '', 'a cut response must not look complete')
  const stats = JSON.parse((await fetchRaw(`${url}/stats`)).body.toString()) as { cancels: number }
  assert.equal(stats.cancels, 1)
  const line = await front.waitFor((l) => l.code === 'FERRY_ERR_FRONT_UPSTREAM_TIMEOUT')
  assert.equal(line.path, '/stall')
})
