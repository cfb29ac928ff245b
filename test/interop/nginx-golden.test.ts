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
import { existsSync, readFileSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { encodeHttp1ResponseHead, encodeUwsgiRequest, FerryError, nginxPathInfo, type ResponseHead } from '@ferry/protocol'
import fc from 'fast-check'
import { DOCUMENT_ROOT, GOLDEN_CASES } from '../fixtures/nginx-golden/cases.ts'
import {
  buildPacket, type CaptureRig, cleanupHooks, joinRepeatedVars, packetVars, repeatedKeys, startCaptureRig
} from '../fixtures/nginx-golden/capture.ts'
import { nginxMissing, nginxVersion, startNginx } from '../helpers/nginx.ts'

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

function get (port: number, path: string): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (d: string) => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
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

  test('PATH_INFO: nginxPathInfo gives nginx\'s bytes for random dot, slash and %-escape paths', async () => {
    const parts = ['a', 'b', '.', '..', '', '%2e', '%2E%2e', '%2F', '%2f..', '%20', '%C3%A9', 'x.y', '...', '.h', '%41', 'é']
    const refused: string[] = []
    let compared = 0
    await fc.assert(fc.asyncProperty(fc.array(fc.constantFrom(...parts), { minLength: 1, maxLength: 8 }), fc.boolean(), async (segs, query) => {
      const path = `/${segs.join('/')}`
      rig.packets.length = 0
      const { status } = await rig.send(Buffer.from(`GET ${path}${query ? '?q=1' : ''} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`))
      if (status.startsWith('HTTP/1.1 400')) {
        refused.push(path)
        return
      }
      assert.equal(status, 'HTTP/1.1 200 OK', path)
      const sent = new Map(packetVars(rig.packets.shift()!))
      const ours = nginxPathInfo(path)
      const oursBytes = typeof ours === 'string' ? Buffer.from(ours, 'utf8') : ours
      assert.equal(oursBytes.toString('hex'), Buffer.from(sent.get('PATH_INFO')!, 'latin1').toString('hex'), path)
      compared++
    }), { numRuns: 80, seed: 20240607 })
    assert.ok(compared >= 20, `compared ${compared} paths`)
    // nginx answers 400 where dot segments climb above "/" (ferry clamps at "/" instead)
    for (const p of refused) assert.match(p, /\.\.|%2e/i)
  })

  test('nginx relays what encodeHttp1ResponseHead writes: Content-Length, close-delimited, 204, repeated Set-Cookie', async () => {
    const original = rig.respond
    const cases: Array<{ head: ResponseHead, body: string[] }> = [
      { head: { status: 200, headers: ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2; Path=/'], bodyLength: 5 }, body: ['hel', 'lo'] },
      { head: { status: 201, headers: ['x-stream', '1'], bodyLength: -1 }, body: ['part1-', 'part2-', 'end'] },
      { head: { status: 204, headers: ['x-empty', 'yes'], bodyLength: 0 }, body: [] },
      { head: { status: 404, headers: ['content-type', 'application/json'], bodyLength: 2 }, body: ['{}'] }
    ]
    try {
      for (const c of cases) {
        rig.respond = (_packet, socket) => {
          socket.write(encodeHttp1ResponseHead(c.head))
          for (const piece of c.body) socket.write(piece)
          socket.end()
        }
        const res = await get(rig.nginx.port, '/written')
        assert.equal(res.status, c.head.status)
        assert.equal(res.body, c.body.join(''))
        for (let i = 0; i < c.head.headers.length; i += 2) {
          const name = c.head.headers[i]!
          const want = c.head.headers.filter((_, j) => j % 2 === 1 && c.head.headers[j - 1] === name)
          const got = res.headers[name]
          assert.deepEqual(Array.isArray(got) ? got : [got], want, name)
        }
        if (c.head.bodyLength > 0) assert.equal(res.headers['content-length'], String(c.head.bodyLength))
      }
    } finally {
      rig.respond = original
    }
  })

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

describe('test/helpers/nginx', { skip }, () => {
  test('listen on a unix socket; stop() ends the process and removes its dir', async () => {
    const hooks = cleanupHooks()
    try {
      const ngx = await startNginx(hooks, { listen: 'unix', location: 'return 200 "unix ok\\n";', server: 'default_type text/plain;' })
      assert.equal(ngx.port, 0)
      assert.ok(ngx.socketPath !== undefined && existsSync(ngx.socketPath))
      const answer = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath: ngx.socketPath, path: '/', agent: false }, (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (d: string) => { body += d })
          res.on('end', () => resolve(`${res.statusCode} ${body}`))
        })
        req.on('error', reject)
        req.end()
      })
      assert.equal(answer, '200 unix ok\n')
      await ngx.stop()
      assert.notEqual(ngx.child.exitCode ?? ngx.child.signalCode, null)
      assert.equal(existsSync(ngx.dir), false)
    } finally {
      await hooks.run()
    }
  })

  test('a config nginx refuses: startNginx rejects with nginx\'s own message', async () => {
    const hooks = cleanupHooks()
    try {
      await assert.rejects(startNginx(hooks, { location: 'no_such_directive on;' }), /unknown directive "no_such_directive"/)
    } finally {
      await hooks.run()
    }
  })
})
