/**
 * Static files served by `ferry front --static`: ETag/304, Last-Modified, Range/206, index
 * files, Cache-Control, and path traversal attempts (never the file outside the root).
 */
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, startFront, startNode, tempDir, type Proc } from './helpers.ts'

const hooks = fileHooks(after)
const SECRET = 'TOP-SECRET-OUTSIDE-ROOT'

/** Send a request line byte for byte (clients normalize `..` away). */
function rawGet (address: string, path: string): Promise<{ status: number, text: string }> {
  const [host, port] = address.replace('tcp://', '').split(':')
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port) })
    let data = ''
    s.setEncoding('utf8')
    s.on('data', (d: string) => { data += d })
    s.on('end', () => resolve({ status: Number(data.slice(9, 12)), text: data }))
    s.on('error', reject)
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  })
}

function setupRoot (dir: string): string {
  const root = join(dir, 'public')
  mkdirSync(join(root, 'sub'), { recursive: true })
  writeFileSync(join(root, 'index.html'), '<h1>index</h1>')
  writeFileSync(join(root, 'style.css'), 'body { color: red }\n')
  writeFileSync(join(root, 'sub', 'index.html'), 'sub index')
  writeFileSync(join(dir, 'secret.txt'), SECRET)
  return root
}

describe('static files (front alone)', () => {
  let front: Proc
  let url: string
  before(async () => {
    const dir = tempDir(hooks)
    front = await startFront(hooks, ['--static', setupRoot(dir)])
    url = baseUrl(front.addresses[0]!)
  })

  test('ETag, Last-Modified and Cache-Control; If-None-Match gives 304', async () => {
    const res = await fetchRaw(`${url}/style.css`)
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'body { color: red }\n')
    assert.match(res.headers['content-type']!, /^text\/css/)
    assert.ok(res.headers.etag)
    assert.ok(res.headers['last-modified'])
    assert.match(res.headers['cache-control']!, /max-age=0/)
    const again = await fetchRaw(`${url}/style.css`, { headers: { 'if-none-match': res.headers.etag! } })
    assert.equal(again.status, 304)
    assert.equal(again.body.length, 0)
    const since = await fetchRaw(`${url}/style.css`, { headers: { 'if-modified-since': res.headers['last-modified']! } })
    assert.equal(since.status, 304)
  })

  test('Range gives 206 with Content-Range', async () => {
    const res = await fetchRaw(`${url}/style.css`, { headers: { range: 'bytes=0-3' } })
    assert.equal(res.status, 206)
    assert.equal(res.body.toString(), 'body')
    assert.equal(res.headers['content-range'], 'bytes 0-3/20')
    const bad = await fetchRaw(`${url}/style.css`, { headers: { range: 'bytes=100-200' } })
    assert.equal(bad.status, 416)
  })

  test('index files for / and folders', async () => {
    assert.equal((await fetchRaw(`${url}/`)).body.toString(), '<h1>index</h1>')
    assert.equal((await fetchRaw(`${url}/sub/`)).body.toString(), 'sub index')
  })

  test('traversal attempts get 403/404, never the file outside the root', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt', '/sub/../../secret.txt', '/sub/%2e%2e/%2e%2e/secret.txt', '/..%5csecret.txt', '/%252e%252e/secret.txt']) {
      const res = await rawGet(front.addresses[0]!, path)
      assert.ok(res.status === 403 || res.status === 404 || res.status === 400, `${path} → ${res.status}`)
      assert.ok(!res.text.includes(SECRET), `${path} leaked the secret`)
    }
  })
})

describe('static files in front of an upstream', () => {
  let url: string
  let address: string
  before(async () => {
    const dir = tempDir(hooks)
    const root = setupRoot(dir)
    const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'app')
    const front = await startFront(hooks, ['--static', root, '--upstream', node.addresses[0]!])
    address = front.addresses[0]!
    url = baseUrl(address)
  })

  test('files are answered by the front, other paths by the app', async () => {
    const file = await fetchRaw(`${url}/style.css`)
    assert.equal(file.headers['x-node'], undefined)
    assert.equal(file.body.toString(), 'body { color: red }\n')
    const dyn = await fetchRaw(`${url}/echo`)
    assert.equal(dyn.headers['x-node'], 'app')
  })

  test('traversal attempts never return the file outside the root', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt', '/%2e%2e%2fsecret.txt']) {
      const res = await rawGet(address, path)
      assert.ok(!res.text.includes(SECRET), `${path} leaked the secret`)
      assert.notEqual(res.status, 0)
    }
  })
})
