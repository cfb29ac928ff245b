/**
 * CGI mounts (RFC 3875) with real programs from test/fixtures/cgi-bin (shell and Python 3):
 * meta-variables, GET with a query, POST body on stdin (known length and streamed), Status,
 * local and client redirects, a program past the time limit (killed with its children, 504),
 * traversal and symlinks out of the folder refused, non-executables refused, stderr logged
 * with the request id, a large body streamed, a bad response → 502.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Session } from '@ferry/protocol'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'
import { collect, connect, head, type Reply, request } from './client.ts'

function vars (r: Reply): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of r.body.toString().split('\n')) {
    const eq = line.indexOf('=')
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1)
  }
  return out
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('CGI mount', () => {
  let app: FerryProcess
  let s: Session
  const tmp = tempDir()
  before(async () => {
    const config = join(tmp.dir, 'app.json')
    writeFileSync(config, JSON.stringify({
      listen: [`unix:${join(tmp.dir, 'app.sock')}`],
      threads: '1',
      mounts: [
        // a roomy limit for the programs that answer (a loaded box can take over 1 s to start
        // python3), and the same folder under a 1 s limit for the one that never does
        { prefix: '/cgi-bin', cgi: 'test/fixtures/cgi-bin', timeout: 10, concurrency: 4, maxQueue: 4 },
        { prefix: '/cgi-slow', cgi: 'test/fixtures/cgi-bin', timeout: 1, concurrency: 2, maxQueue: 2 },
        { prefix: '/app', handler: 'test/fixtures/mounts/site.ts' }
      ]
    }))
    app = await startFerry(['app', '--config', config])
    s = await connect(app.addresses[0]!)
  })
  after(async () => {
    s?.destroy()
    await app?.stop()
    tmp.cleanup()
  })

  test('GET with a query: the RFC 3875 meta-variables (shell script)', async () => {
    const r = await request(s, head('/cgi-bin/hello.sh/extra/p%20ath?a=1&b=two', {
      requestId: 'rid-hello',
      remoteAddress: '192.0.2.7',
      remotePort: 4567,
      protocol: 'HTTP/1.1',
      headers: ['x-custom', 'yes', 'authorization', 'Basic c2VjcmV0', 'proxy', 'http://evil:1', 'cookie', 'a=1', 'cookie', 'b=2', 'x_under', 'no']
    }))
    assert.equal(r.status, 200)
    assert.equal(r.get('content-type'), 'text/plain; charset=utf-8')
    assert.equal(r.get('x-cgi'), 'sh')
    const v = vars(r)
    assert.equal(v.GATEWAY_INTERFACE, 'CGI/1.1')
    assert.equal(v.REQUEST_METHOD, 'GET')
    assert.equal(v.QUERY_STRING, 'a=1&b=two')
    assert.equal(v.SCRIPT_NAME, '/cgi-bin/hello.sh')
    assert.equal(v.PATH_INFO, '/extra/p ath')
    assert.equal(v.REQUEST_URI, '/cgi-bin/hello.sh/extra/p%20ath?a=1&b=two')
    assert.equal(v.SERVER_PROTOCOL, 'HTTP/1.1')
    assert.equal(v.SERVER_SOFTWARE, 'ferry')
    assert.equal(v.SERVER_NAME, 'test.local')
    assert.equal(v.SERVER_PORT, '80')
    assert.equal(v.REMOTE_ADDR, '192.0.2.7')
    assert.equal(v.REMOTE_PORT, '4567')
    assert.equal(v.CONTENT_LENGTH, '<unset>')
    assert.equal(v.HTTP_X_CUSTOM, 'yes')
    assert.equal(v.HTTP_AUTHORIZATION, '<unset>')
    assert.equal(v.HTTP_PROXY, '<unset>')
    assert.equal(v.HTTP_COOKIE, 'a=1; b=2')
    assert.equal(v.FERRY_REQUEST_ID, 'rid-hello')
    assert.doesNotMatch(r.body.toString(), /HTTP_X_UNDER/)
  })

  test('POST body on stdin (Python script), known length and streamed', async () => {
    const r = await request(s, head('/cgi-bin/echo.py?x=1', { method: 'POST', headers: ['content-type', 'text/plain', 'x-custom', 'py'] }), 'héllo body')
    assert.equal(r.status, 200)
    assert.equal(r.get('content-type'), 'application/json')
    const j = JSON.parse(r.body.toString())
    assert.equal(j.body, 'héllo body')
    assert.equal(j.env.REQUEST_METHOD, 'POST')
    assert.equal(j.env.CONTENT_LENGTH, String(Buffer.byteLength('héllo body')))
    assert.equal(j.env.CONTENT_TYPE, 'text/plain')
    assert.equal(j.env.QUERY_STRING, 'x=1')
    assert.equal(j.env.SCRIPT_NAME, '/cgi-bin/echo.py')
    assert.match(j.env.SCRIPT_FILENAME, /test\/fixtures\/cgi-bin\/echo\.py$/)
    assert.equal(j.env.HTTP_X_CUSTOM, 'py')
    // streamed upload (no length): no CONTENT_LENGTH, the program reads to EOF
    const big = Buffer.alloc(300_000, 97)
    const st = s.request(head('/cgi-bin/echo.py', { method: 'POST', bodyLength: -1 }), false)
    const r2 = await collect(st, async (w) => {
      for (let i = 0; i < 3; i++) w.write(big.subarray(i * 100_000, (i + 1) * 100_000))
      w.end()
    })
    assert.equal(r2.status, 200)
    const j2 = JSON.parse(r2.body.toString())
    assert.equal(j2.body.length, 300_000)
    assert.equal(j2.env.CONTENT_LENGTH, null)
  })

  test('Status: 404 Not Found is the response status', async () => {
    const r = await request(s, head('/cgi-bin/status.sh'))
    assert.equal(r.status, 404)
    assert.equal(r.body.toString(), 'no such thing\n')
  })

  test('Location: a client redirect (absolute URL) → 302', async () => {
    const r = await request(s, head('/cgi-bin/redirect.sh'))
    assert.equal(r.status, 302)
    assert.equal(r.get('location'), 'https://example.com/elsewhere')
  })

  test('Location: /path — a local redirect, served internally as a GET (to a CGI and to a fetch mount)', async () => {
    const r = await request(s, head('/cgi-bin/redirect.sh?local', { method: 'POST', headers: ['content-type', 'text/plain'] }), 'dropped')
    assert.equal(r.status, 200)
    const v = vars(r)
    assert.equal(v.REQUEST_METHOD, 'GET')
    assert.equal(v.QUERY_STRING, 'from=redirect')
    assert.equal(v.SCRIPT_NAME, '/cgi-bin/hello.sh')
    assert.equal(v.CONTENT_TYPE, '<unset>')
    const f = await request(s, head('/cgi-bin/redirect.sh?fetch'))
    assert.equal(f.status, 200)
    const j = JSON.parse(f.body.toString())
    assert.equal(j.app, 'site')
    assert.equal(j.pathname, '/after-redirect')
    assert.equal(j.scriptName, '/app')
    const loop = await request(s, head('/cgi-bin/redirect.sh?loop', { requestId: 'rid-loop' }))
    assert.equal(loop.status, 500)
    assert.equal(loop.get('x-ferry-error'), 'FERRY_ERR_APP_CGI_REDIRECT_LOOP')
    assert.equal(loop.get('x-request-id'), 'rid-loop')
  })

  test('past the time limit: 504, the process group is killed (no pid left)', async () => {
    const r = await request(s, head('/cgi-slow/sleep.sh', { requestId: 'rid-sleep' }))
    assert.equal(r.status, 504)
    assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_CGI_TIMEOUT')
    assert.equal(r.get('x-request-id'), 'rid-sleep')
    const line = await app.waitForLog((l) => l.reqId === 'rid-sleep' && typeof l.stderr === 'string' && l.stderr.startsWith('pids '))
    const pids = (line.stderr as string).split(' ').slice(1).map(Number)
    assert.equal(pids.length, 2)
    for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 100))
    assert.deepEqual(pids.filter(alive), [], 'the script and its child are gone')
  })

  test('stderr goes to the log, line by line, with the request id', async () => {
    const r = await request(s, head('/cgi-bin/stderr.sh', { requestId: 'rid-stderr' }))
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'ok\n')
    const a = await app.waitForLog((l) => l.reqId === 'rid-stderr' && l.stderr === 'first problem')
    const b = await app.waitForLog((l) => l.reqId === 'rid-stderr' && l.stderr === 'second problem')
    assert.equal(a.msg, 'CGI stderr')
    assert.match(String(b.script), /stderr\.sh$/)
  })

  const refused: [string, number, string][] = [
    ['/cgi-bin/../cgi-outside/evil.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/%2e%2e/cgi-outside/evil.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/..%2fcgi-outside%2fevil.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/sub/..%2F..%2Fcgi-outside/evil.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/hello.sh/../../cgi-outside/evil.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/%zz', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/out-link.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/notexec.sh', 403, 'FERRY_ERR_APP_CGI_FORBIDDEN'],
    ['/cgi-bin/nope.sh', 404, 'FERRY_ERR_APP_CGI_NOT_FOUND'],
    ['/cgi-bin/', 404, 'FERRY_ERR_APP_CGI_NOT_FOUND'],
    ['/cgi-bin/sub', 404, 'FERRY_ERR_APP_CGI_NOT_FOUND']
  ]
  for (const [path, status, code] of refused) {
    test(`refused: ${path} → ${status}`, async () => {
      const r = await request(s, head(path, { requestId: 'rid-refused' }))
      assert.equal(r.status, status)
      assert.equal(r.get('x-ferry-error'), code)
      assert.equal(r.get('x-request-id'), 'rid-refused')
      assert.doesNotMatch(r.body.toString(), /escaped|should never run/)
    })
  }

  test('a symlink inside the folder and a program in a subfolder run', async () => {
    const a = await request(s, head('/cgi-bin/alias.sh?via=alias'))
    assert.equal(a.status, 200)
    assert.equal(vars(a).QUERY_STRING, 'via=alias')
    const r = await request(s, head('/cgi-bin/sub/inner.sh/x/y'))
    assert.equal(r.status, 200)
    assert.equal(r.body.toString(), 'script=/cgi-bin/sub/inner.sh path_info=/x/y\n')
  })

  test('a 4 MiB body streams through with backpressure, byte for byte', async () => {
    const r = await request(s, head('/cgi-bin/big.py'))
    assert.equal(r.status, 200)
    assert.equal(r.body.byteLength, 4 * 1024 * 1024)
    const chunk = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    for (let off = 0; off < r.body.byteLength; off += 1024 * 1024 - 1) assert.equal(r.body[off], chunk[off % 256])
  })

  test('no CGI response head → 502', async () => {
    const r = await request(s, head('/cgi-bin/bad.sh'))
    assert.equal(r.status, 502)
    assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_CGI_BAD_RESPONSE')
  })
})

test('CGI concurrency bound: past running + queue → 503 FERRY_ERR_APP_CGI_BUSY at once', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const config = join(tmp.dir, 'app.json')
  writeFileSync(config, JSON.stringify({
    listen: [`unix:${join(tmp.dir, 'busy.sock')}`],
    mounts: [{ prefix: '/cgi-bin', cgi: 'test/fixtures/cgi-bin', timeout: 1, concurrency: 1, maxQueue: 1 }]
  }))
  const app = await startFerry(['app', '--config', config])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const running = request(s, head('/cgi-bin/sleep.sh', { requestId: 'rid-run' }))
  await app.waitForLog((l) => l.reqId === 'rid-run' && typeof l.stderr === 'string')
  const queued = request(s, head('/cgi-bin/status.sh'))
  const refused = await request(s, head('/cgi-bin/hello.sh', { requestId: 'rid-busy' }))
  assert.equal(refused.status, 503)
  assert.equal(refused.get('x-ferry-error'), 'FERRY_ERR_APP_CGI_BUSY')
  assert.equal(refused.get('x-request-id'), 'rid-busy')
  assert.equal(refused.get('retry-after'), '1')
  assert.equal((await running).status, 504)
  // the queued one ran once the slot was free
  assert.equal((await queued).status, 404)
})

test('ferry app --help documents mounts, middleware and CGI with their anchors', () => {
  const help = execFileSync(process.execPath, ['packages/cli/dist/bin.js', 'app', '--help'], { encoding: 'utf8' })
  for (const s of ['--mount', '--middleware', 'cgi:', 'manage-script-name', 'mount=', 'PEP 3333', 'RFC 3875', 'scriptName', 'body-limit', 'compress', 'cors', 'request-id']) {
    assert.ok(help.includes(s), `--help mentions ${s}`)
  }
})

test('the client goes away: the program and its children are killed; after local redirects SIGTERM drains at once', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const app = await startFerry(['app', '--listen', `unix:${join(tmp.dir, 'gone.sock')}`, '--threads', '1', '--timeout', '30', '--graceful-timeout', '20'],
    { env: { FERRY_APP_MOUNT: '/cgi-bin=cgi:test/fixtures/cgi-bin /app=test/fixtures/mounts/site.ts' } })
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  // a local redirect to a CGI program and one to a fetch mount, both complete
  assert.equal((await request(s, head('/cgi-bin/redirect.sh?local'))).status, 200)
  assert.equal((await request(s, head('/cgi-bin/redirect.sh?fetch'))).status, 200)
  const stream = s.request(head('/cgi-bin/sleep.sh', { requestId: 'rid-gone' }), true)
  stream.onError = () => {}
  const line = await app.waitForLog((l) => l.reqId === 'rid-gone' && typeof l.stderr === 'string' && l.stderr.startsWith('pids '))
  const pids = (line.stderr as string).split(' ').slice(1).map(Number)
  assert.ok(pids.every(alive))
  stream.reset(0, 'client went away')
  for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(pids.filter(alive), [], 'the script and its child are gone')
  // nothing is left in flight: SIGTERM finishes at once with everything drained
  assert.equal(await app.stop(), 0)
  assert.equal((await app.waitForLog((l) => l.msg === 'stopped')).drained, true)
})
