/**
 * Real nginx (Debian's) with `uwsgi_pass suwsgi://` (uwsgi over TLS) to a `ferry app`
 * listening on tls:// with --tls-client-ca: nginx presents its client certificate
 * (uwsgi_ssl_certificate) and verifies the node's (uwsgi_ssl_verify). Without a client
 * certificate nginx is refused and the node logs FERRY_ERR_APP_TLS_HANDSHAKE.
 * Skips when nginx or openssl is not installed.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { type CertFiles, makeCerts } from '../helpers/certs.ts'
import { nginxMissing, startNginx } from '../helpers/nginx.ts'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'

const HANDLER = new URL('../fixtures/handlers/basic.ts', import.meta.url).pathname
const tmp = tempDir('ferry-suwsgi-')
const missing = nginxMissing()
const certs: CertFiles | null = missing === undefined ? makeCerts(tmp.dir) : null
const skip = missing ?? (certs === null ? 'openssl not installed' : undefined)
if (skip !== undefined) console.log(`# skip: ${skip}`)

describe('nginx uwsgi_pass suwsgi:// → ferry app on tls:// with client certificates', { skip }, () => {
  let app: FerryProcess
  let target = ''
  const hooks: (() => unknown)[] = []
  const t = { after: (fn: () => unknown) => { hooks.push(fn) } }

  before(async () => {
    const c = certs!
    app = await startFerry(['app', HANDLER, '--listen', 'tls://127.0.0.1:0', '--threads', '1',
      '--tls-cert', c.serverCert, '--tls-key', c.serverKey, '--tls-client-ca', c.ca])
    target = app.addresses[0]!.replace('tls://', '')
  })

  after(async () => {
    for (const h of hooks.reverse()) await h()
    await app?.stop()
    tmp.cleanup()
  })

  test('with nginx\'s client certificate: GET and a POST body come back; the node verified nginx', async () => {
    const c = certs!
    const ngx = await startNginx(t, {
      location: `uwsgi_pass suwsgi://${target}; include /etc/nginx/uwsgi_params;
        uwsgi_ssl_certificate ${c.clientCert}; uwsgi_ssl_certificate_key ${c.clientKey};
        uwsgi_ssl_trusted_certificate ${c.ca}; uwsgi_ssl_verify on; uwsgi_ssl_name localhost;`
    })
    const get = await fetch(`${ngx.url}/text`)
    assert.equal(get.status, 200)
    assert.equal(await get.text(), 'GET ')
    const payload = randomBytes(200 * 1024)
    const post = await fetch(`${ngx.url}/echo`, { method: 'POST', body: payload })
    assert.equal(post.status, 200)
    assert.ok(Buffer.from(await post.arrayBuffer()).equals(payload))
    assert.equal(app.logs.filter((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE').length, 0, ngx.stderr())
  })

  test('without a client certificate: nginx answers 502, the node logs the refusal', async () => {
    const c = certs!
    const ngx = await startNginx(t, {
      location: `uwsgi_pass suwsgi://${target}; include /etc/nginx/uwsgi_params;
        uwsgi_ssl_trusted_certificate ${c.ca}; uwsgi_ssl_verify on; uwsgi_ssl_name localhost;`
    })
    const res = await fetch(`${ngx.url}/text`)
    await res.arrayBuffer()
    assert.equal(res.status, 502)
    const line = await app.waitForLog((l) => l.code === 'FERRY_ERR_APP_TLS_HANDSHAKE')
    assert.equal(line.reason, 'PEER_DID_NOT_RETURN_A_CERTIFICATE')
  })
})
