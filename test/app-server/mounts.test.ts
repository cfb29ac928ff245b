/**
 * Mounts: three applications in one `ferry app`, longest prefix wins on whole segments, each
 * sees its own path (prefix stripped), its scriptName and the original URL; each mount has its
 * own pool, so a busy mount does not delay another; no mount → 404 with the request id;
 * stats carry a mount label; SIGHUP reloads every mount; config-file mounts; bad mount options.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Session } from '@ferry/protocol'
import { type FerryProcess, startFerry, tempDir } from '../helpers/proc.ts'
import { connect, head, request } from './client.ts'

const F = 'test/fixtures/mounts'
const BIN = 'packages/cli/dist/bin.js'

interface Seen { app: string, url: string, pathname: string, search: string, scriptName: string, originalUrl: string }

describe('three mounts from flags', () => {
  let app: FerryProcess
  let s: Session
  const tmp = tempDir()
  before(async () => {
    app = await startFerry(['app', '--mount', `/api=${F}/api.ts`, '--mount', `/admin/=${F}/admin.ts`, '--mount', `/=${F}/site.ts`,
      '--listen', `unix:${join(tmp.dir, 'app.sock')}`, '--threads', '1', '--concurrency', '1', '--stats', 'tcp://127.0.0.1:0'])
    s = await connect(app.addresses[0]!)
  })
  after(async () => {
    s?.destroy()
    await app?.stop()
    tmp.cleanup()
  })

  const cases: [string, Partial<Seen>][] = [
    ['/api/users?x=1', { app: 'api', pathname: '/users', search: '?x=1', scriptName: '/api', url: 'http://test.local/users?x=1', originalUrl: 'http://test.local/api/users?x=1' }],
    ['/api', { app: 'api', pathname: '/', scriptName: '/api', url: 'http://test.local/', originalUrl: 'http://test.local/api' }],
    ['/api?q=2', { app: 'api', pathname: '/', search: '?q=2', scriptName: '/api', originalUrl: 'http://test.local/api?q=2' }],
    ['/api/', { app: 'api', pathname: '/', scriptName: '/api' }],
    ['/apix/y', { app: 'site', pathname: '/apix/y', scriptName: '', url: 'http://test.local/apix/y', originalUrl: 'http://test.local/apix/y' }],
    ['/admin/users/7', { app: 'admin', pathname: '/users/7', scriptName: '/admin', originalUrl: 'http://test.local/admin/users/7' }],
    ['/', { app: 'site', pathname: '/', scriptName: '' }],
    ['/site/page', { app: 'site', pathname: '/site/page', scriptName: '' }]
  ]
  for (const [path, want] of cases) {
    test(`${path} → ${want.app} sees ${want.pathname} under "${want.scriptName}"`, async () => {
      const r = await request(s, head(path))
      assert.equal(r.status, 200)
      const got = JSON.parse(r.body.toString()) as Seen
      for (const [k, v] of Object.entries(want)) assert.equal(got[k as keyof Seen], v, `${k} of ${path}`)
    })
  }

  test('a busy mount does not delay another mount (one pool per mount)', async () => {
    const order: string[] = []
    // admin's only thread is stuck in a 3 s loop; api and site answer meanwhile
    const busy = request(s, head('/admin/busy?ms=3000')).then((r) => { order.push('admin'); return r })
    await new Promise((resolve) => setTimeout(resolve, 200))
    const api = await request(s, head('/api/x'))
    order.push('api')
    const site = await request(s, head('/y'))
    order.push('site')
    assert.equal(api.status, 200)
    assert.equal(site.status, 200)
    assert.equal((await busy).status, 200)
    assert.deepEqual(order, ['api', 'site', 'admin'])
  })

  test('request body reaches the mounted handler', async () => {
    const r = await request(s, head('/api/echo', { method: 'POST' }), 'payload')
    assert.equal(r.status, 200)
    assert.equal(r.get('x-app'), 'api')
    assert.equal(r.body.toString(), 'payload')
  })

  test('stats carry a mount label', async () => {
    const addr = (await app.waitForLog((l) => l.msg === 'stats listening')).address as string
    const text = await (await fetch(`${addr.replace('tcp://', 'http://')}/metrics`)).text()
    assert.match(text, /^ferry_app_mount_requests_total\{mount="\/api",status="200"\} \d+$/m)
    assert.match(text, /^ferry_app_mount_requests_total\{mount="\/admin",status="200"\} \d+$/m)
    assert.match(text, /^ferry_app_mount_requests_total\{mount="\/",status="200"\} \d+$/m)
    assert.match(text, /^ferry_app_mount_threads\{mount="\/api"\} 1$/m)
    assert.match(text, /^ferry_app_threads 3$/m)
  })

  test('SIGHUP reloads every mount; each still answers', async () => {
    app.proc.kill('SIGHUP')
    const line = await app.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('reloaded'))
    assert.deepEqual([...(line.mounts as string[])].sort(), ['/', '/admin', '/api'])
    for (const [path, name] of [['/api/a', 'api'], ['/admin/b', 'admin'], ['/c', 'site']]) {
      const r = await request(s, head(path!))
      assert.equal(JSON.parse(r.body.toString()).app, name)
    }
  })
})

test('no mount at / : an unmatched path → 404 with x-request-id and the code', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const app = await startFerry(['app', '--mount', `/api=${F}/api.ts`, '--listen', `unix:${join(tmp.dir, 'a.sock')}`, '--threads', '1'])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  const r = await request(s, head('/other', { requestId: 'rid-nomount' }))
  assert.equal(r.status, 404)
  assert.equal(r.get('x-request-id'), 'rid-nomount')
  assert.equal(r.get('x-ferry-error'), 'FERRY_ERR_APP_NO_MOUNT')
  assert.equal((await request(s, head('/api/ok'))).status, 200)
})

test('config file mounts with per-mount pool settings', async (t) => {
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const config = join(tmp.dir, 'app.json')
  writeFileSync(config, JSON.stringify({
    listen: [`unix:${join(tmp.dir, 'c.sock')}`],
    threads: '1',
    mounts: [
      { prefix: '/api', handler: `${F}/api.ts`, threads: '2', maxQueue: 8 },
      { prefix: '/admin', handler: `${F}/admin.ts`, threads: '1', timeout: 0.5, concurrency: 1 },
      { prefix: '/', handler: `${F}/site.ts` }
    ]
  }))
  const app = await startFerry(['app', '--config', config])
  t.after(() => app.stop())
  const s = await connect(app.addresses[0]!)
  t.after(() => s.destroy())
  assert.equal(JSON.parse((await request(s, head('/api/x'))).body.toString()).app, 'api')
  // admin's own timeout (0.5 s) applies to admin only
  const slow = await request(s, head('/admin/busy?ms=1500'))
  assert.equal(slow.status, 504)
  assert.equal(slow.get('x-ferry-error'), 'FERRY_ERR_APP_TIMEOUT')
  const fine = await request(s, head('/busy?ms=800'))
  assert.equal(fine.status, 200)
  assert.equal(JSON.parse(fine.body.toString()).app, 'site')
})

test('bad mount options are refused at start with FERRY_ERR_APP_OPTIONS', (t) => {
  const bad: string[][] = [
    ['app', '--mount', 'api=./x.ts'],
    ['app', '--mount', '/api'],
    ['app', '--mount', '/a/../b=./x.ts'],
    ['app', `${F}/site.ts`, '--mount', `/=${F}/api.ts`],
    ['app', '--mount', `/api=${F}/api.ts`, '--mount', `/api/=${F}/admin.ts`],
    ['app', '--mount', '/c=cgi:/nonexistent-folder-ferry'],
    ['app', `${F}/site.ts`, '--middleware', 'no-such-middleware']
  ]
  const tmp = tempDir()
  t.after(() => tmp.cleanup())
  const badMounts = [
    { prefix: '/c', cgi: 'test/fixtures/cgi-bin', middleware: ['compress'] },
    { prefix: '/c', cgi: 'test/fixtures/cgi-bin', threads: '2' },
    { prefix: '/c', handler: 'x.ts', cgi: 'y' },
    { prefix: '/c', handler: 'x.ts', bogus: 1 }
  ]
  for (const [i, mount] of badMounts.entries()) {
    const file = join(tmp.dir, `bad${i}.json`)
    writeFileSync(file, JSON.stringify({ mounts: [mount] }))
    bad.push(['app', '--config', file])
  }
  for (const args of bad) {
    const r = spawnSync(process.execPath, [BIN, ...args, '--listen', 'tcp://127.0.0.1:0', '--threads', '1'], { encoding: 'utf8', timeout: 20000 })
    assert.notEqual(r.status, 0, args.join(' '))
    assert.match(r.stdout + r.stderr, /FERRY_ERR_APP_OPTIONS/, args.join(' '))
  }
})
