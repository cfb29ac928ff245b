/**
 * Golden bytes from real nginx: Debian's nginx with `uwsgi_pass` + /etc/nginx/uwsgi_params
 * sends fixed requests (cases.ts) to a capturing unix socket; encodeUwsgiRequest of the
 * equivalent RequestHead must produce the identical packet.
 *
 * The one named difference — repeated headers: nginx ≤ 1.22 (Debian 12 ships 1.22.1) sends a
 * repeated header as repeated vars (uWSGI then keeps only the last); ferry joins them into
 * one var at the first occurrence with ", " ("; " for Cookie), as nginx ≥ 1.23 does. So on
 * 1.22 the capture is compared after joining its repeated vars, the test asserts that nginx
 * did send them repeated, and `repeatedHeaders: 'repeat'` must give 1.22's exact bytes; on
 * ≥ 1.23 the capture is compared as is.
 *
 * The stored fixtures (test/fixtures/nginx-golden, refreshed by
 * scripts/capture-nginx-golden.ts) must match a fresh capture except for the two socket ports.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { encodeUwsgiRequest, FerryError } from '@ferry/protocol'
import { DOCUMENT_ROOT, GOLDEN_CASES } from '../fixtures/nginx-golden/cases.ts'
import {
  buildPacket, type CaptureRig, cleanupHooks, joinRepeatedVars, packetVars, repeatedKeys, startCaptureRig
} from '../fixtures/nginx-golden/capture.ts'
import { nginxMissing, nginxVersion } from '../helpers/nginx.ts'

const FIXTURES = new URL('../fixtures/nginx-golden/', import.meta.url)
const skip = nginxMissing()
if (skip !== undefined) process.stdout.write(`# skip nginx-golden: ${skip}\n`)

function joinsRepeated (version: string): boolean {
  const [major, minor] = version.split('.').map(Number) as [number, number]
  return major > 1 || (major === 1 && minor >= 23)
}

/** The expected body bytes nginx forwards for a case (de-chunked for chunked uploads). */
function expectedBody (request: Buffer): Buffer {
  const text = request.toString('latin1')
  const split = text.indexOf('\r\n\r\n') + 4
  const body = request.subarray(split)
  if (!/transfer-encoding: chunked/i.test(text.slice(0, split))) return body
  const parts: Buffer[] = []
  let off = 0
  for (;;) {
    const nl = body.indexOf('\r\n', off)
    const size = Number.parseInt(body.toString('latin1', off, nl), 16)
    if (size === 0) return Buffer.concat(parts)
    parts.push(body.subarray(nl + 2, nl + 2 + size))
    off = nl + 2 + size + 2
  }
}

describe('nginx uwsgi_pass golden bytes', { skip }, () => {
  const hooks = cleanupHooks()
  let rig: CaptureRig
  let version: string
  let joins: boolean
  before(async () => {
    version = nginxVersion()
    joins = joinsRepeated(version)
    rig = await startCaptureRig(hooks)
  })
  after(() => hooks.run())

  for (const c of GOLDEN_CASES) {
    test(`${c.name}: encodeUwsgiRequest matches nginx's packet`, async () => {
      const cap = await rig.capture(c)
      const size = cap.bytes.readUInt16LE(1)
      const packet = cap.bytes.subarray(0, 4 + size)
      assert.equal(cap.bytes[0], 0, 'modifier1')
      assert.equal(cap.bytes[3], 0, 'modifier2')
      assert.deepEqual(cap.bytes.subarray(4 + size), expectedBody(c.request), 'body after the vars')

      const head = c.head(cap.remotePort, cap.serverPort)
      const nginxVars = packetVars(packet)
      const repeated = repeatedKeys(nginxVars)
      if (c.name === 'repeated-headers') {
        // the named difference: which behaviour the installed nginx has
        if (joins) assert.deepEqual(repeated, [], `nginx ${version} joins repeated headers`)
        else assert.deepEqual(repeated.sort(), ['HTTP_ACCEPT', 'HTTP_COOKIE', 'HTTP_X_FORWARDED_FOR'], `nginx ${version} repeats them`)
      } else {
        assert.deepEqual(repeated, [])
      }

      // ferry's default (joined) against nginx's packet with repeated vars joined
      const expected = joins ? packet : buildPacket(joinRepeatedVars(nginxVars))
      const ours = encodeUwsgiRequest(head, { documentRoot: DOCUMENT_ROOT })
      assert.deepEqual(packetVars(ours), packetVars(expected))
      assert.equal(ours.toString('hex'), expected.toString('hex'))

      // and 1.22's own behaviour, byte for byte
      if (!joins) {
        const legacy = encodeUwsgiRequest(head, { documentRoot: DOCUMENT_ROOT, repeatedHeaders: 'repeat' })
        assert.equal(legacy.toString('hex'), packet.toString('hex'))
      }

      // the stored fixture is this same packet, apart from the two socket ports
      const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as {
        nginx: string
        cases: Array<{ name: string, file: string }>
      }
      const entry = manifest.cases.find((e) => e.name === c.name)
      assert.ok(entry, `fixture for ${c.name}: run node --import tsx scripts/capture-nginx-golden.ts`)
      if (manifest.nginx === version) {
        const stored = readFileSync(new URL(entry.file, FIXTURES))
        const noPorts = (vars: Array<[string, string]>) => vars.filter(([k]) => k !== 'REMOTE_PORT' && k !== 'SERVER_PORT')
        assert.deepEqual(noPorts(packetVars(stored)), noPorts(nginxVars))
        assert.deepEqual(stored.subarray(4 + stored.readUInt16LE(1)), cap.bytes.subarray(4 + size))
      }
    })
  }

  test('a vars block past 65535 bytes: nginx refuses it ("uwsgi request is too big: N"), ferry throws for the same N', async () => {
    const big = 'x'.repeat(60000)
    const headers = ['host', 'example.test', 'x-big-a', big, 'x-big-b', big.slice(0, 8000)]
    const request = Buffer.from(`GET /big HTTP/1.1\r\nHost: example.test\r\nX-Big-A: ${big}\r\nX-Big-B: ${big.slice(0, 8000)}\r\n\r\n`)
    const { remotePort, status } = await rig.send(request)
    assert.equal(status, 'HTTP/1.1 500 Internal Server Error')
    const m = /uwsgi request is too big: (\d+)/.exec(rig.nginx.stderr())
    assert.ok(m, `nginx logs the refusal:\n${rig.nginx.stderr()}`)
    const head = {
      method: 'GET',
      path: '/big',
      authority: 'example.test',
      scheme: 'http',
      headers,
      remoteAddress: '127.0.0.1',
      remotePort,
      requestId: '',
      bodyLength: 0,
      serverName: '',
      serverPort: rig.nginx.port,
      protocol: 'HTTP/1.1'
    }
    assert.throws(() => encodeUwsgiRequest(head, { documentRoot: DOCUMENT_ROOT }), (err: unknown) => {
      assert.ok(err instanceof FerryError)
      assert.equal(err.code, 'FERRY_ERR_UWSGI_ENCODE_TOO_LARGE')
      assert.equal(err.statusCode, 431)
      assert.match(err.message, new RegExp(`vars block of ${m[1]} bytes`))
      return true
    })
  })
})
