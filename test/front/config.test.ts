/**
 * `ferry front --config`: named pools with prefix routes and per-route timeouts, SIGHUP
 * re-reads the node set (new nodes get traffic, removed ones drain), dns:// nodes, and
 * FERRY_FRONT_* environment variables.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { baseUrl, fetchRaw, fileHooks, sleep, startFront, startNode, tempDir } from './helpers.ts'

const hooks = fileHooks(after)

test('config file: prefix routes to named pools, per-route timeout, SIGHUP reload', async () => {
  const dir = tempDir(hooks)
  const [api, admin, web, web2] = await Promise.all(['api', 'admin', 'web', 'web2'].map((n) => startNode(hooks, `unix:${join(dir, `${n}.sock`)}`, n)))
  const file = join(dir, 'ferry.config.json')
  const config = (webNodes: string[]): string => JSON.stringify({
    pools: {
      api: { upstreams: [api!.addresses[0]] },
      admin: { upstreams: [admin!.addresses[0]] },
      default: { upstreams: webNodes }
    },
    routes: [
      { prefix: '/api', pool: 'api', timeout: 300 },
      { prefix: '/admin/', pool: 'admin' }
    ]
  })
  writeFileSync(file, config([web!.addresses[0]!]))
  const front = await startFront(hooks, ['--config', file])
  const url = baseUrl(front.addresses[0]!)
  assert.equal((await fetchRaw(`${url}/api/users`)).headers['x-node'], 'api')
  assert.equal((await fetchRaw(`${url}/api`)).headers['x-node'], 'api')
  assert.equal((await fetchRaw(`${url}/admin/x`)).headers['x-node'], 'admin')
  assert.equal((await fetchRaw(`${url}/other`)).headers['x-node'], 'web')
  assert.equal((await fetchRaw(`${url}/apiary`)).headers['x-node'], 'web')
  const slow = await fetchRaw(`${url}/api/slow?ms=1500`)
  assert.equal(slow.status, 504)
  assert.equal((await fetchRaw(`${url}/x/slow?ms=500`)).status, 200)

  writeFileSync(file, config([web2!.addresses[0]!]))
  front.child.kill('SIGHUP')
  await front.waitFor((l) => l.msg === 'reloaded upstreams')
  let moved = false
  for (let i = 0; i < 50 && !moved; i++) {
    const res = await fetchRaw(`${url}/other`)
    assert.equal(res.status, 200)
    if (res.headers['x-node'] === 'web2') moved = true
    else await sleep(20)
  }
  assert.ok(moved, 'requests go to the new node after SIGHUP')
  for (let i = 0; i < 10; i++) assert.equal((await fetchRaw(`${url}/other`)).headers['x-node'], 'web2')
})

test('dns://name:port nodes are resolved (A/AAAA) and used', async () => {
  const node = await startNode(hooks, 'tcp://127.0.0.1:0', 'dnsnode')
  const port = node.addresses[0]!.split(':').pop()
  const front = await startFront(hooks, ['--upstream', `dns://localhost:${port}`, '--dns-interval', '200ms'])
  const url = baseUrl(front.addresses[0]!)
  let res = await fetchRaw(`${url}/hello`)
  for (let i = 0; i < 20 && res.status !== 200; i++) {
    await sleep(50)
    res = await fetchRaw(`${url}/hello`)
  }
  assert.equal(res.status, 200)
  assert.equal(res.headers['x-node'], 'dnsnode')
  const changed = await front.waitFor((l) => l.msg === 'upstream nodes changed')
  assert.ok((changed.nodes as string[]).includes(`tcp://127.0.0.1:${port}`))
})

test('FERRY_FRONT_* environment variables configure the front', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'envnode')
  const front = await startFront(hooks, [], { FERRY_FRONT_UPSTREAM: node.addresses[0]!, FERRY_FRONT_MAX_BODY: '10' })
  const url = baseUrl(front.addresses[0]!)
  assert.equal((await fetchRaw(`${url}/hello`)).headers['x-node'], 'envnode')
  assert.equal((await fetchRaw(`${url}/echo`, { method: 'POST', body: 'more than ten bytes' })).status, 413)
})

test('a TypeScript config file (.ts) loads too', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'tsconf')
  const file = join(dir, 'ferry.config.ts')
  writeFileSync(file, `const config = { upstreams: [${JSON.stringify(node.addresses[0])}] as string[], maxBody: 10 }\nexport default config\n`)
  const front = await startFront(hooks, ['--config', file])
  const url = baseUrl(front.addresses[0]!)
  assert.equal((await fetchRaw(`${url}/hello`)).headers['x-node'], 'tsconf')
  assert.equal((await fetchRaw(`${url}/echo`, { method: 'POST', body: 'more than ten bytes' })).status, 413)
})
