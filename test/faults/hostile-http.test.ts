/**
 * Fault scenario 8: hostile HTTP to the front, each request on its own raw connection,
 * and forged X-Forwarded-For. The app node records every request it receives.
 */
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { CASES, type HostileHttpResult, hostileHttp } from './scenarios/hostile-http.ts'

let r: HostileHttpResult

before(async () => { r = await hostileHttp() }, { timeout: 45000 })

test('every hostile request gets its status (400/413/431/403…), one response only, no file outside the static root', () => {
  assert.equal(r.cases.length, CASES.length)
  for (const k of r.cases) {
    assert.ok(k.expect.includes(k.status), `${k.name}: status ${k.status}, expected one of ${k.expect.join('/')}`)
    assert.equal(k.responses, 1, `${k.name}: exactly one response on the connection (no smuggled second request)`)
    assert.equal(k.leaked, false, `${k.name}: the secret file outside the static root was not served`)
  }
  assert.equal(r.alive, true)
})

test('nothing the app could misread reached it: only the plain static miss, its %2f still encoded', () => {
  assert.deepEqual(r.recorded.map((x) => `${x.method} ${new URL(x.url).pathname}`), ['GET /rec/..%2fsecret.txt'])
  assert.ok(!r.recorded.some((x) => x.url.includes('smuggled')), 'no smuggled request was forwarded')
})

test('a client\'s X-Forwarded-For / -Proto are not believed by default; they are with --forwarded-allow-ips', () => {
  const u = r.forged.untrusted
  assert.ok(u !== null, 'the request reached the app')
  assert.equal(u.remoteAddress, '127.0.0.1')
  assert.ok(u.url.startsWith('http://'), `scheme not taken from X-Forwarded-Proto: ${u.url}`)
  assert.deepEqual(u.headers.filter(([k]) => k.startsWith('x-forwarded')), [], 'the forged headers were dropped')
  const t = r.forged.trusted
  assert.ok(t !== null)
  assert.equal(t.remoteAddress, '6.6.6.6')
  assert.ok(t.url.startsWith('https://'))
})
