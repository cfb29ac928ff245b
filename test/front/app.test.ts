/**
 * `ferry front` → the real `ferry app` (fetch handler in worker threads) over unix and tcp:
 * methods, headers, UTF-8 path, long query, 100 MiB both ways with bounded front memory,
 * SSE, and a client abort that the handler sees as request.signal aborting.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { baseUrl, CLI, fetchRaw, fileHooks, rssOf, sleep, startFront, startProc, tempDir, type Proc, ROOT } from './helpers.ts'

const hooks = fileHooks(after)
const HANDLER = join(ROOT, 'test/front/fixtures/echo-app.ts')

interface Echo { method: string, url: string, headers: string[], bytes: number, sha256: string }

for (const transport of ['unix', 'tcp'] as const) {
  describe(`front → ferry app over ${transport}`, () => {
    let front: Proc
    let url: string
    let cancelFile: string
    before(async () => {
      const dir = tempDir(hooks)
      cancelFile = join(dir, 'cancels.txt')
      const listen = transport === 'unix' ? `unix:${join(dir, 'app.sock')}` : 'tcp://127.0.0.1:0'
      const app = await startProc(hooks, [CLI, 'app', HANDLER, '--listen', listen, '--threads', '1'], { env: { CANCEL_FILE: cancelFile } })
      front = await startFront(hooks, ['--upstream', app.addresses[0]!])
      url = baseUrl(front.addresses[0]!)
    })

    test('methods, repeated headers, UTF-8 path and a long query', async () => {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH']) {
        const body = method === 'GET' ? undefined : `${method} body`
        const res = await fetchRaw(`${url}/m`, { method, body })
        assert.equal(res.status, 200)
        const echo = JSON.parse(res.body.toString()) as Echo
        assert.equal(echo.method, method)
        assert.equal(echo.bytes, body === undefined ? 0 : body.length)
      }
      const path = `/p/${encodeURIComponent('ünï/日本')}?q=${'z'.repeat(6000)}`
      const res = await fetchRaw(`${url}${path}`, { headers: ['Host', 'front.test', 'X-Multi', 'a', 'X-Multi', 'b', 'Connection', 'keep-alive'] })
      const echo = JSON.parse(res.body.toString()) as Echo
      assert.equal(echo.url, `http://front.test${path}`)
      const multi = echo.headers.filter((_, i) => i % 2 === 1 && echo.headers[i - 1] === 'x-multi')
      assert.deepEqual(multi, ['a, b'])
      assert.ok(!echo.headers.includes('connection'))
    })

    test('server-sent events', async () => {
      const res = await fetchRaw(`${url}/sse?n=3`)
      assert.equal(res.headers['content-type'], 'text/event-stream')
      assert.equal(res.body.toString(), 'data: event 0\n\ndata: event 1\n\ndata: event 2\n\n')
    })

    test('client abort → the handler sees request.signal abort', async () => {
      await new Promise<void>((resolve) => {
        const req = httpRequest(`${url}/hang?${transport}`, { agent: false })
        req.on('error', () => resolve())
        req.end()
        setTimeout(() => { req.destroy(); resolve() }, 300)
      })
      // appendFileSync creates the file before it writes the line: wait for the line, not the file
      const line = (): string => (existsSync(cancelFile) ? readFileSync(cancelFile, 'utf8') : '')
      for (let i = 0; i < 100 && !line().endsWith('\n'); i++) await sleep(20)
      assert.equal(line(), `?${transport}\n`)
    })

    test('100 MiB download and upload with bounded front memory', async (t) => {
      const SIZE = 100 * 1024 * 1024
      const pid = front.child.pid!
      const base = rssOf(pid)
      let peak = base
      const got = await new Promise<number>((resolve, reject) => {
        let bytes = 0
        let paused = false
        httpRequest(`${url}/download?n=${SIZE}`, { agent: false }, (res) => {
          res.on('data', (c: Buffer) => {
            bytes += c.length
            if (!paused && bytes > 10 * 1024 * 1024) {
              paused = true
              res.pause()
              setTimeout(() => { peak = Math.max(peak, rssOf(pid)); res.resume() }, 300)
            }
            if ((bytes & 0x3fffff) < c.length) peak = Math.max(peak, rssOf(pid))
          })
          res.on('end', () => resolve(bytes))
        }).on('error', reject).end()
      })
      assert.equal(got, SIZE)
      const chunk = Buffer.alloc(1024 * 1024, 3)
      const echo = await new Promise<Echo>((resolve, reject) => {
        const req = httpRequest(`${url}/up`, { method: 'POST', headers: { 'content-length': String(SIZE) }, agent: false }, (r) => {
          const parts: Buffer[] = []
          r.on('data', (c: Buffer) => parts.push(c))
          r.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString()) as Echo))
        })
        req.on('error', reject)
        let sent = 0
        const pump = (): void => {
          while (sent < SIZE) {
            sent += chunk.length
            if (sent % (8 * chunk.length) === 0) peak = Math.max(peak, rssOf(pid))
            if (!req.write(chunk)) { req.once('drain', pump); return }
          }
          req.end()
        }
        pump()
      })
      assert.equal(echo.bytes, SIZE)
      assert.equal(echo.sha256, createHash('sha256').update(Buffer.alloc(SIZE, 3)).digest('hex'))
      const growth = peak - base
      t.diagnostic(`front RSS: base ${(base / 1048576).toFixed(1)} MiB, peak ${(peak / 1048576).toFixed(1)} MiB over 2 × 100 MiB`)
      assert.ok(growth < 48 * 1024 * 1024, `front RSS grew by ${(growth / 1048576).toFixed(1)} MiB`)
    })
  })
}
