/**
 * The shared-secret handshake: HMAC-SHA256 challenge-response in HELLO (docs/protocol.md,
 * "Authentication"). Each side proves it holds the secret over the other side's fresh nonce;
 * the secret itself never crosses the wire, and a recorded handshake cannot be replayed.
 */
import assert from 'node:assert/strict'
import { createHmac, randomBytes } from 'node:crypto'
import { describe, test, type TestContext } from 'node:test'
import { encodeRequestHead, Flags, FrameType, PREFACE, PROTOCOL_ERRORS, ResetCode, Session } from '@ferry/protocol'
import {
  decodeGoaway, decodeHello, frame, getHead, helloPayload, once, type RawPeer, sessionWithRawPeer, socketPair, unhex
} from '../helpers/fixtures-native.ts'

const T = { timeout: 15000 }
const SECRET = 'correct horse battery staple'

function hmac (secret: string, label: string, a: Uint8Array, b: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(label).update(a).update(b).digest()
}

/** A raw client that runs the handshake by hand; returns the server's HELLO fields. */
async function rawHandshake (t: TestContext, serverSecret: string, nonce: Buffer) {
  const s = await sessionWithRawPeer(t, 'server', { auth: serverSecret })
  s.peer.send(PREFACE, frame(FrameType.HELLO, 0, 0, helloPayload({}, { nonce })))
  const reply = decodeHello((await s.peer.waitType(FrameType.HELLO)).payload)
  return { ...s, serverNonce: Buffer.from(reply.nonce), serverProof: Buffer.from(reply.proof) }
}

async function authFailed (s: { peer: RawPeer, errors: Error[], session: Session }): Promise<void> {
  const g = decodeGoaway((await s.peer.waitType(FrameType.GOAWAY)).payload)
  assert.equal(g.code, ResetCode.AUTH_FAILED)
  await s.peer.waitClose()
  assert.equal((s.errors[0] as { code?: string } | undefined)?.code, 'FERRY_ERR_AUTH')
  assert.equal(PROTOCOL_ERRORS.FERRY_ERR_AUTH.resetCode, ResetCode.AUTH_FAILED)
  assert.equal(s.session.ready, false)
}

describe('shared-secret authentication (HMAC challenge-response in HELLO)', () => {
  test('matching secrets: both sides ready, requests flow, and the secret is never on the wire', T, async (t) => {
    const [cs, ss] = await socketPair(t)
    const wire: Buffer[] = []
    cs.on('data', (c: Buffer) => wire.push(Buffer.from(c)))
    ss.on('data', (c: Buffer) => wire.push(Buffer.from(c)))
    const server = new Session(ss, { role: 'server', auth: SECRET })
    const client = new Session(cs, { role: 'client', auth: SECRET })
    t.after(() => { client.destroy(); server.destroy() })
    server.on('stream', (st) => { st.respond({ status: 204, headers: [], bodyLength: 0 }, true) })
    await Promise.all([once(server, 'ready'), once(client, 'ready')])
    const st = client.request(getHead('/'), true)
    const status = await new Promise<number>((resolve) => { st.onResponse = (h) => resolve(h.status) })
    assert.equal(status, 204)
    const all = Buffer.concat(wire)
    assert.equal(all.includes(Buffer.from(SECRET)), false, 'the secret does not cross the wire')
  })

  test('a server proves the secret; the client\'s proof (HELLO ACK) is HMAC over the server nonce', T, async (t) => {
    const nonce = randomBytes(16)
    const s = await rawHandshake(t, SECRET, nonce)
    assert.equal(s.serverNonce.length, 16)
    assert.deepEqual(s.serverProof, hmac(SECRET, 'ferry-server', nonce, s.serverNonce))
    assert.equal(s.session.ready, false, 'not ready before the client proves the secret')
    const proof = hmac(SECRET, 'ferry-client', s.serverNonce, nonce)
    s.peer.sendFrame(FrameType.HELLO, Flags.ACK, 0, helloPayload({}, { proof }))
    await once(s.session, 'ready')
    s.peer.ping(Buffer.alloc(8, 7))
    const pong = await s.peer.waitFrame((f) => f.type === FrameType.PING && (f.flags & Flags.ACK) !== 0)
    assert.deepEqual(unhex(pong.payload), Buffer.alloc(8, 7))
  })

  test('wrong secret → FERRY_ERR_AUTH, GOAWAY AUTH_FAILED, closed', T, async (t) => {
    const nonce = randomBytes(16)
    const s = await rawHandshake(t, SECRET, nonce)
    const proof = hmac('wrong secret', 'ferry-client', s.serverNonce, nonce)
    s.peer.sendFrame(FrameType.HELLO, Flags.ACK, 0, helloPayload({}, { proof }))
    await authFailed(s)
  })

  test('no secret offered (HELLO without a nonce) → FERRY_ERR_AUTH', T, async (t) => {
    const s = await sessionWithRawPeer(t, 'server', { auth: SECRET })
    s.peer.hello('client')
    await authFailed(s)
  })

  test('a request before the proof → FERRY_ERR_AUTH (nothing is served unauthenticated)', T, async (t) => {
    const s = await rawHandshake(t, SECRET, randomBytes(16))
    let streams = 0
    s.session.on('stream', () => { streams++ })
    s.peer.sendFrame(FrameType.HEADERS, Flags.END_STREAM, 1, encodeRequestHead(getHead('/')))
    await authFailed(s)
    assert.equal(streams, 0)
  })

  test('a replayed handshake is refused: the server nonce is fresh per connection', T, async (t) => {
    const nonce = randomBytes(16)
    const first = await rawHandshake(t, SECRET, nonce)
    const proof = hmac(SECRET, 'ferry-client', first.serverNonce, nonce)
    first.peer.sendFrame(FrameType.HELLO, Flags.ACK, 0, helloPayload({}, { proof }))
    await once(first.session, 'ready')
    // An eavesdropper replays the client's bytes (same nonce, same proof) on a new connection.
    const second = await rawHandshake(t, SECRET, nonce)
    assert.notDeepEqual(second.serverNonce, first.serverNonce)
    second.peer.sendFrame(FrameType.HELLO, Flags.ACK, 0, helloPayload({}, { proof }))
    await authFailed(second)
  })

  test('a client with a secret refuses a server that cannot prove it (mutual)', T, async (t) => {
    const s = await sessionWithRawPeer(t, 'client', { auth: SECRET })
    const hello = decodeHello((await s.peer.waitType(FrameType.HELLO)).payload)
    assert.equal(hello.nonce.length, 16)
    // An impostor server answers with a nonce and a proof made without the secret.
    const serverNonce = randomBytes(16)
    s.peer.hello('server', {}, { nonce: serverNonce, proof: hmac('guess', 'ferry-server', hello.nonce, serverNonce) })
    await authFailed(s)
  })

  test('Session to Session: different secrets fail on both sides; a server secret refuses a client without one', T, async (t) => {
    for (const [serverSecret, clientSecret] of [[SECRET, 'other'], [SECRET, undefined], [undefined, SECRET]] as const) {
      const [cs, ss] = await socketPair(t)
      const server = new Session(ss, { role: 'server', auth: serverSecret })
      const client = new Session(cs, { role: 'client', auth: clientSecret })
      const failures: string[] = []
      server.on('error', (e: { code: string }) => failures.push(`server ${e.code}`))
      client.on('error', (e: { code: string }) => failures.push(`client ${e.code}`))
      let readyClient = false
      client.on('ready', () => { readyClient = true })
      await Promise.all([once(server, 'close'), once(client, 'close')])
      if (serverSecret !== undefined) assert.equal(server.ready, false, `${serverSecret}/${clientSecret}: server never ready`)
      assert.ok(failures.some((f) => f.endsWith('FERRY_ERR_AUTH')), `${serverSecret}/${clientSecret}: ${failures.join(', ')}`)
      if (clientSecret !== undefined) assert.equal(readyClient, false)
    }
  })
})
