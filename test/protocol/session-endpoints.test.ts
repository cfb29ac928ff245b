/**
 * HELLO `endpoints` (field 8): a server announces more addresses of its node (`ferry app
 * --direct`), the client reads them as `peerEndpoints`; a client's own endpoints are not
 * taken from it, and a server without any announces none (old peers see nothing new).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FrameType, PREFACE, Session } from '@ferry/protocol'
import { decodeHello, frame, getHead, helloPayload, once, sessionWithRawPeer, socketPair } from '../helpers/fixtures-native.ts'

const T = { timeout: 15000 }
const ENDPOINTS = ['unix:/run/ferry/app.sock.1', 'tcp://127.0.0.1:40123']

describe('HELLO endpoints', () => {
  test('the server announces them, the client reads them, requests still flow on the first connection', T, async (t) => {
    const [cs, ss] = await socketPair(t)
    const server = new Session(ss, { role: 'server', endpoints: ENDPOINTS })
    const client = new Session(cs, { role: 'client' })
    t.after(() => { client.destroy(); server.destroy() })
    server.on('stream', (st) => { st.respond({ status: 204, headers: [], bodyLength: 0 }, true) })
    await Promise.all([once(server, 'ready'), once(client, 'ready')])
    assert.deepEqual(client.peerEndpoints, ENDPOINTS)
    assert.deepEqual(server.peerEndpoints, [])
    const st = client.request(getHead('/'), true)
    assert.equal(await new Promise<number>((resolve) => { st.onResponse = (h) => resolve(h.status) }), 204)
  })

  test('on the wire: field 8 of the server HELLO; none without --direct', T, async (t) => {
    for (const endpoints of [ENDPOINTS, undefined]) {
      const s = await sessionWithRawPeer(t, 'server', endpoints === undefined ? {} : { endpoints })
      s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, helloPayload({})))
      const reply = decodeHello((await s.peer.waitType(FrameType.HELLO)).payload)
      assert.deepEqual(reply.endpoints, endpoints ?? [])
    }
  })

  test('a client announcing endpoints is not believed by the server', T, async (t) => {
    const [cs, ss] = await socketPair(t)
    const server = new Session(ss, { role: 'server' })
    const client = new Session(cs, { role: 'client', endpoints: ENDPOINTS })
    t.after(() => { client.destroy(); server.destroy() })
    await Promise.all([once(server, 'ready'), once(client, 'ready')])
    assert.deepEqual(server.peerEndpoints, [])
    assert.deepEqual(client.peerEndpoints, [])
  })
})
