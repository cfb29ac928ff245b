/**
 * The `ferry` fastify plugin inside a user's fastify app (their hooks run in front of the
 * forwarding; their routes keep working), and createFront in-process.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { createFront, ferry } from '@ferry/front'
import Fastify from 'fastify'
import { fetchRaw, fileHooks, startNode, tempDir } from './helpers.ts'

const hooks = fileHooks(after)

test('app.register(ferry): user hooks guard forwarded routes, user routes stay', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'plug')
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'unauthorized' })
  })
  app.get('/local', async () => ({ local: true }))
  await app.register(ferry, { upstreams: [node.addresses[0]!], routes: [{ prefix: '/api', pool: 'default' }], catchAll: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  hooks.after(() => app.close())
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  const auth = { authorization: 'Bearer ok' }
  assert.equal((await fetchRaw(`${url}/api/hello`)).status, 401)
  const fwd = await fetchRaw(`${url}/api/hello`, { headers: auth })
  assert.equal(fwd.status, 200)
  assert.equal(fwd.body.toString(), 'hello from plug')
  assert.deepEqual(JSON.parse((await fetchRaw(`${url}/local`, { headers: auth })).body.toString()), { local: true })
  assert.equal((await fetchRaw(`${url}/elsewhere`, { headers: auth })).status, 404)
  const post = await fetchRaw(`${url}/api/echo`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"a":1}' })
  assert.equal((JSON.parse(post.body.toString()) as { bytes: number }).bytes, 7)
})

test('createFront in-process, with x-request-id trusted when configured', async () => {
  const dir = tempDir(hooks)
  const node = await startNode(hooks, `unix:${join(dir, 'n.sock')}`, 'cf')
  const app = createFront({ upstreams: [node.addresses[0]!], trustRequestId: true })
  await app.listen({ host: '127.0.0.1', port: 0 })
  hooks.after(() => app.close())
  const { port } = app.server.address() as { port: number }
  const res = await fetchRaw(`http://127.0.0.1:${port}/echo`, { headers: { 'x-request-id': 'abc-123' } })
  assert.equal((JSON.parse(res.body.toString()) as { requestId: string }).requestId, 'abc-123')
  assert.equal(app.ferry.pools.get('default')!.nodes.length, 1)
})
