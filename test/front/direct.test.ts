/**
 * `ferry app --direct N` behind `ferry front`: N threads each serve native connections on
 * their own addresses (unix PATH.1, PATH.2 …; tcp: a port each), announced in the node's HELLO,
 * and the front sends its requests there. uwsgi (which knows nothing of endpoints) still goes
 * to the node's pool. The main thread supervises the threads: a stuck one (past --timeout) or
 * one that exits is replaced — its requests fail or are retried, the node is not ejected —
 * SIGHUP swaps them for fresh ones (new code) without failing a request, SIGTERM drains them
 * and removes their sockets. --stats counts their requests and their events.
 */
import assert from 'node:assert/strict'
import { existsSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { normalizeOptions } from '@ferry/front'
import { certsOrSkip } from '../helpers/certs.ts'
import { baseUrl, CLI, fetchRaw, fileHooks, type Proc, ROOT, type Res, sleep, startFront, startProc, tempDir } from './helpers.ts'

const hooks = fileHooks(after)
const HANDLER = join(ROOT, 'test/front/fixtures/direct-app.mjs')

interface Who { threadId: number, version: string }
interface DirectEntry { thread: number, threadId: number, addresses: string[] }
type Line = Record<string, unknown>

/** Start `ferry app direct-app.mjs` with `--threads 1 --direct 2` and `extra` flags. */
async function startApp (t: { after: (fn: () => Promise<void> | void) => void }, listen: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ app: Proc, direct: DirectEntry[], directIds: number[], stats: string | null }> {
  const app = await startProc(t, [CLI, 'app', HANDLER, '--listen', listen, '--threads', '1', '--direct', '2', ...extra], { env })
  const listening = await app.waitFor((l) => l.msg === 'listening')
  const direct = listening.direct as DirectEntry[]
  assert.ok(Array.isArray(direct), `no "direct" in the listening line: ${JSON.stringify(listening)}`)
  let stats: string | null = null
  if (extra.includes('--stats')) stats = baseUrl((await app.waitFor((l) => l.msg === 'stats listening')).address as string)
  return { app, direct, directIds: direct.map((d) => d.threadId), stats }
}

/**
 * A `--direct` app (startApp) on a fresh unix socket behind a front of its own; resolves once
 * a thread answers through the front.
 */
async function startBehindFront (t: { after: (fn: () => Promise<void> | void) => void }, extra: string[] = [], env: NodeJS.ProcessEnv = {}, dir = tempDir(t)): Promise<Awaited<ReturnType<typeof startApp>> & { sock: string, front: Proc, url: string }> {
  const sock = join(dir, 'app.sock')
  const started = await startApp(t, `unix:${sock}`, extra, env)
  const front = await startFront(t, ['--upstream', `unix:${sock}`])
  const url = baseUrl(front.addresses[0]!)
  await untilDirect(url, started.directIds)
  return { ...started, sock, front, url }
}

function parseWho (res: Res): Who {
  assert.equal(res.status, 200, res.body.toString())
  return JSON.parse(res.body.toString()) as Who
}

async function who (url: string): Promise<Who> {
  return parseWho(await fetchRaw(`${url}/who`))
}

/** `n` GET /who at once; every answer must be 200. */
async function batch (url: string, n: number): Promise<Who[]> {
  return Promise.all(Array.from({ length: n }, () => who(url)))
}

/**
 * The front answers the first requests through the node's own address until its sessions to
 * the thread endpoints are up: wait until a direct thread answers.
 */
async function untilDirect (url: string, ids: readonly number[], timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const w = await who(url)
    if (ids.includes(w.threadId)) return
    if (Date.now() > end) assert.fail(`no --direct thread (${ids.join(', ')}) answered within ${timeoutMs} ms; last threadId ${w.threadId}`)
    await sleep(20)
  }
}

/**
 * Concurrent batches of GET /who until each of `want` answered; every answer (all 200) must come
 * from `allowed`. The front picks the thread session with the fewest open streams, so it takes
 * requests that overlap to reach both.
 */
async function seeAll (url: string, want: readonly number[], allowed: (id: number) => boolean, tries = 8, n = 40): Promise<Set<number>> {
  const seen = new Set<number>()
  for (let i = 0; i < tries; i++) {
    for (const w of await batch(url, n)) {
      assert.ok(allowed(w.threadId), `threadId ${w.threadId} answered (seen so far: ${[...seen].join(', ')})`)
      seen.add(w.threadId)
    }
    if (want.every((id) => seen.has(id))) return seen
  }
  assert.fail(`after ${tries} batches of ${n}, saw threadIds ${[...seen].join(', ')}; wanted ${want.join(', ')}`)
}

async function metrics (statsUrl: string): Promise<string> {
  const res = await fetchRaw(`${statsUrl}/metrics`)
  assert.equal(res.status, 200)
  return res.body.toString()
}

/** The value of the sample named exactly `sample` (name with its labels), or undefined. */
function sampleOf (text: string, sample: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1))
  }
  return undefined
}

async function until (what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out (${timeoutMs} ms) waiting for ${what}`)
    await sleep(25)
  }
}

function errorCode (res: Res): string {
  return (JSON.parse(res.body.toString()) as { code: string }).code
}

function ejected (front: Proc): Line[] {
  return front.lines.filter((l) => l.msg === 'upstream node ejected')
}

describe('--direct over unix: threads, uwsgi to the pool, stats', () => {
  let sock: string
  let direct: DirectEntry[]
  let directIds: number[]
  let stats: string
  let url: string
  before(async () => {
    const started = await startBehindFront(hooks, ['--stats', '127.0.0.1:0'])
    ;({ sock, direct, directIds, url } = started)
    stats = started.stats!
  })

  test('the listening line names 2 threads on <sock>.1 and <sock>.2; the front spreads requests over both', async () => {
    assert.deepEqual(direct.map((d) => d.thread), [1, 2])
    assert.deepEqual(direct.map((d) => d.addresses), [[`unix:${sock}.1`], [`unix:${sock}.2`]])
    assert.equal(new Set(directIds).size, 2)
    for (const d of direct) assert.ok(Number.isInteger(d.threadId) && d.threadId > 0, JSON.stringify(d))
    for (const p of [sock, `${sock}.1`, `${sock}.2`]) assert.ok(existsSync(p), `${p} missing`)
    await untilDirect(url, directIds)
    await seeAll(url, directIds, (id) => directIds.includes(id))
  })

  test('a uwsgi front (no endpoints) is served by the pool', async () => {
    const front = await startFront(hooks, ['--upstream', `uwsgi+unix:${sock}`])
    const u = baseUrl(front.addresses[0]!)
    const ids = new Set((await batch(u, 10)).map((w) => w.threadId))
    for (const id of ids) assert.ok(!directIds.includes(id), `uwsgi request ran on direct thread ${id}`)
    assert.equal(ids.size, 1, `one pool thread expected, saw ${[...ids].join(', ')}`)
  })

  test('front --no-direct: the endpoints are not used, the node\'s own address (the pool) serves', async () => {
    const plain = await startFront(hooks, ['--upstream', `unix:${sock}`, '--no-direct'])
    const plainUrl = baseUrl(plain.addresses[0]!)
    for (let i = 0; i < 3; i++) {
      for (const w of await batch(plainUrl, 20)) assert.ok(!directIds.includes(w.threadId), `a --direct thread (${w.threadId}) answered through a --no-direct front`)
    }
    assert.equal(plain.lines.filter((l) => typeof l.endpoint === 'string').length, 0)
  })

  test('--stats: the threads\' requests are counted; ferry_app_direct_threads 2', async (t) => {
    await untilDirect(url, directIds)
    const before = sampleOf(await metrics(stats), 'ferry_app_requests_total{status="200"}') ?? 0
    const N = 30
    const answers = await batch(url, N)
    for (const w of answers) assert.ok(directIds.includes(w.threadId))
    const text = await metrics(stats)
    const now = sampleOf(text, 'ferry_app_requests_total{status="200"}')
    assert.ok(now !== undefined, text)
    t.diagnostic(`ferry_app_requests_total{status="200"}: ${before} → ${now} over ${N} requests`)
    assert.ok(now - before >= N, `ferry_app_requests_total{status="200"} went from ${before} to ${now} over ${N} requests`)
    assert.equal(sampleOf(text, 'ferry_app_direct_threads'), 2)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="started"}'), 2)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 0)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="stuck"}'), 0)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="failed"}'), 0)
  })
})

test('the front\'s direct option: default true, per pool, a boolean or FERRY_ERR_FRONT_CONFIG', () => {
  assert.equal(normalizeOptions({ upstreams: ['unix:/x.sock'] }).pools.default!.direct, true)
  assert.equal(normalizeOptions({ upstreams: ['unix:/x.sock'], direct: false }).pools.default!.direct, false)
  const both = normalizeOptions({ direct: false, pools: { a: { upstreams: ['unix:/a.sock'], direct: true }, b: { upstreams: ['unix:/b.sock'] } }, catchAll: 'a' })
  assert.equal(both.pools.a!.direct, true)
  assert.equal(both.pools.b!.direct, false)
  assert.throws(() => normalizeOptions({ upstreams: ['unix:/x.sock'], direct: 'no' as unknown as boolean }), (e: { code?: string }) => e.code === 'FERRY_ERR_FRONT_CONFIG')
})

test('--direct over tcp: a port per thread, requests served by the threads', async (t) => {
  const { app, direct, directIds } = await startApp(t, 'tcp://127.0.0.1:0')
  const own = app.addresses[0]!
  const ownPort = Number(/^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(own)?.[1])
  assert.ok(ownPort > 0, own)
  const ports = direct.map((d) => {
    assert.equal(d.addresses.length, 1)
    const m = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(d.addresses[0]!)
    assert.ok(m !== null, d.addresses[0])
    return Number(m[1])
  })
  assert.equal(new Set([ownPort, ...ports]).size, 3, `ports: node ${ownPort}, threads ${ports.join(', ')}`)
  const front = await startFront(t, ['--upstream', own])
  const url = baseUrl(front.addresses[0]!)
  await untilDirect(url, directIds)
  await seeAll(url, directIds, (id) => directIds.includes(id))
})

test('tls:// with client certificates and --auth: each thread has a tls:// port of its own, reached with the same checks', async (t) => {
  const dir = tempDir(t)
  const { certs } = certsOrSkip(dir, '--direct over tls://')
  if (certs === null) {
    t.skip('openssl not installed')
    return
  }
  const secret = 'direct-threads-secret'
  const { app, direct, directIds } = await startApp(t, 'tls://127.0.0.1:0', ['--tls-cert', certs.serverCert, '--tls-key', certs.serverKey, '--tls-client-ca', certs.ca], { FERRY_APP_AUTH: secret })
  for (const d of direct) assert.match(d.addresses[0]!, /^tls:\/\/127\.0\.0\.1:\d+$/)
  const tlsArgs = ['--upstream-tls-ca', certs.ca, '--upstream-tls-cert', certs.clientCert, '--upstream-tls-key', certs.clientKey]
  const front = await startFront(t, ['--upstream', app.addresses[0]!, ...tlsArgs], { FERRY_FRONT_AUTH: secret })
  const url = baseUrl(front.addresses[0]!)
  await untilDirect(url, directIds)
  await seeAll(url, directIds, (id) => directIds.includes(id))
  // a front without a client certificate reaches neither the node nor its threads
  const bare = await startFront(t, ['--upstream', app.addresses[0]!, '--upstream-tls-ca', certs.ca, '--connect-timeout', '2s'], { FERRY_FRONT_AUTH: secret })
  const res = await fetchRaw(`${baseUrl(bare.addresses[0]!)}/who`)
  assert.equal(res.status, 502, res.body.toString())
})

test('an endpoint the front cannot reach: logged once after 2 s, requests go to the node\'s own address', async (t) => {
  const dir = tempDir(t)
  const sock = join(dir, 'app.sock')
  const { directIds } = await startApp(t, `unix:${sock}`)
  // as a front in another filesystem would see it: the thread listens, its path is not there
  unlinkSync(`${sock}.1`)
  const front = await startFront(t, ['--upstream', `unix:${sock}`])
  const url = baseUrl(front.addresses[0]!)
  const warned = await front.waitFor((l) => l.msg === 'cannot reach a --direct thread of the node: its requests go through the node\'s own address until it answers')
  assert.equal(warned.endpoint, `unix:${sock}.1`)
  assert.equal(warned.level, 40)
  // thread 2 takes the requests; nothing fails, the node is not ejected
  for (const w of await batch(url, 30)) assert.ok(w.threadId !== directIds[0], `answered by the unreachable thread ${w.threadId}`)
  await untilDirect(url, [directIds[1]!])
  await sleep(2500)
  assert.equal(front.lines.filter((l) => l.endpoint === `unix:${sock}.1`).length, 1, 'the unreachable endpoint was logged more than once')
  assert.equal(ejected(front).length, 0)
})

test('a stuck thread is terminated and replaced: its request 502, a GET on it retried, others served, node kept', async (t) => {
  // --timeout 1.5 s: stuck past 1.5 s + a tick (375 ms); the slow GETs (1 s) stay within it
  const { app, directIds, stats, sock, front, url } = await startBehindFront(t, ['--timeout', '1.5', '--stats', '127.0.0.1:0'])
  await seeAll(url, directIds, (id) => directIds.includes(id))

  // One slow GET on each thread (the front takes the session with the fewest open streams), then
  // the spin: it joins the first thread's slow GET, whose timer can then never fire.
  const slow = [0, 1].map(() => {
    const sent = Date.now()
    return fetchRaw(`${url}/slow?ms=1000`).then((res) => ({ res, ms: Date.now() - sent, at: Date.now() }))
  })
  await sleep(200)
  const t0 = Date.now()
  let spinDone = false
  const spin = fetchRaw(`${url}/spin`, { method: 'POST', body: '' }).finally(() => { spinDone = true })
  await sleep(300) // let the spin reach its thread before the GETs below

  // GETs while the thread spins: all answered (by the other thread until the stuck one is replaced)
  const during: Array<{ w: Who, at: number }> = []
  while (!spinDone) {
    during.push({ w: await who(url), at: Date.now() })
    if (Date.now() - t0 > 15000) break
  }
  const res = await spin
  const spinMs = Date.now() - t0
  assert.equal(res.status, 502, res.body.toString())
  assert.equal(errorCode(res), 'FERRY_ERR_FRONT_UPSTREAM_RESET')
  assert.ok(spinMs < 10000, `the stuck request took ${spinMs} ms to fail`)

  const stuck = await app.waitFor((l) => l.code === 'FERRY_ERR_APP_WORKER_REPLACED')
  assert.equal(stuck.level, 50)
  assert.ok(directIds.includes(stuck.threadId as number), JSON.stringify(stuck))
  const stuckId = stuck.threadId as number
  const otherId = directIds.find((id) => id !== stuckId)!
  const stuckAt = stuck.time as number
  const replaced = await app.waitFor((l) => l.msg === 'direct thread replaced')
  assert.equal(replaced.direct, stuck.direct)
  assert.deepEqual(replaced.addresses, [`unix:${sock}.${stuck.direct as number}`])
  assert.ok(app.lines.indexOf(stuck) < app.lines.indexOf(replaced))
  const newId = replaced.threadId as number
  assert.ok(!directIds.includes(newId), `replacement threadId ${newId} is an old one`)

  assert.ok(during.length > 0)
  const beforeKill = during.filter((d) => d.at < stuckAt)
  assert.ok(beforeKill.length > 0, 'no GET answered while the thread was stuck')
  for (const d of beforeKill) assert.equal(d.w.threadId, otherId, 'a GET while the thread spun was not served by the other thread')

  // The slow GET that sat on the stuck thread was retried elsewhere: it still answers 200, after the kill.
  const slowDone = await Promise.all(slow)
  for (const s of slowDone) assert.equal(s.res.status, 200, s.res.body.toString())
  const slowIds = slowDone.map((s) => parseWho(s.res).threadId)
  assert.ok(!slowIds.includes(stuckId), `a slow GET answered from the stuck thread: ${slowIds.join(', ')}`)
  assert.ok(slowDone.some((s) => s.at > stuckAt), `no slow GET finished after the kill (retried): ${slowDone.map((s) => s.ms).join(', ')} ms`)

  t.diagnostic(`stuck POST failed after ${spinMs} ms; ${during.length} GETs meanwhile (${beforeKill.length} before the kill); slow GETs ${slowDone.map((x) => x.ms).join(' / ')} ms`)
  // afterwards: served, and the replacement thread takes requests
  // (while the new thread starts the front may use the node's own address: the pool answers)
  await seeAll(url, [newId], (id) => id !== stuckId, 20)
  assert.equal(ejected(front).length, 0, JSON.stringify(ejected(front)))
  const text = await metrics(stats!)
  assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="stuck"}'), 1, text)
  assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 0, text)
  assert.equal(sampleOf(text, 'ferry_app_direct_threads'), 2, text)
})

describe('a thread that dies is replaced at once', () => {
  let app: Proc
  let front: Proc
  let url: string
  let stats: string
  let directIds: number[]
  let sock: string
  before(async () => {
    const started = await startBehindFront(hooks, ['--stats', '127.0.0.1:0'])
    ;({ app, directIds, front, sock, url } = started)
    stats = started.stats!
  })

  test('process.exit in the handler: POST 502, logged, thread replaced, its requests still counted, node not ejected', async () => {
    await untilDirect(url, directIds)
    // requests served since the last scrape by the thread that then dies are not lost from the
    // counters (they are in shared memory)
    const before = sampleOf(await metrics(stats), 'ferry_app_requests_total{status="200"}') ?? 0
    let sent = 0
    const seen = new Set<number>()
    for (let i = 0; i < 8 && !directIds.every((id) => seen.has(id)); i++) {
      for (const w of await batch(url, 40)) seen.add(w.threadId)
      sent += 40
    }
    const res = await fetchRaw(`${url}/exit`, { method: 'POST', body: '' })
    assert.equal(res.status, 502, res.body.toString())
    assert.equal(errorCode(res), 'FERRY_ERR_FRONT_UPSTREAM_RESET')
    const replaced = await app.waitFor((l) => l.msg === 'direct thread replaced')
    assert.ok(!directIds.includes(replaced.threadId as number))
    const addresses = replaced.addresses as string[]
    assert.ok(addresses.length === 1 && [`unix:${sock}.1`, `unix:${sock}.2`].includes(addresses[0]!), JSON.stringify(replaced))
    const exited = app.lines.find((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED')
    assert.ok(exited !== undefined, 'no FERRY_ERR_APP_WORKER_CRASHED line for the exit')
    assert.equal(exited.level, 50)
    assert.equal(exited.exitCode, 3)
    assert.match(exited.msg as string, /^direct thread exited/)
    const text0 = await metrics(stats)
    assert.equal(sampleOf(text0, 'ferry_app_requests_total{status="200"}'), before + sent, text0)
    const answers = await batch(url, 20)
    assert.equal(answers.length, 20)
    assert.equal(ejected(front).length, 0, JSON.stringify(ejected(front)))
    const text = await metrics(stats)
    assert.equal(sampleOf(text, 'ferry_app_requests_total{status="200"}'), before + sent + 20, text)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 1, text)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="started"}'), 3, text)
    assert.equal(sampleOf(text, 'ferry_app_direct_threads'), 2, text)
  })

  test('an uncaught exception in a request\'s async work: that request 500 FERRY_ERR_APP_UNCAUGHT, the thread goes on', async () => {
    const ids = [...directIds, ...app.lines.filter((l) => l.msg === 'direct thread replaced').map((l) => l.threadId as number)]
    await untilDirect(url, ids)
    const replacedBefore = app.lines.filter((l) => l.msg === 'direct thread replaced').length
    // slow GETs on both threads while the throw happens: none of them is harmed
    const slow = Array.from({ length: 6 }, () => fetchRaw(`${url}/slow?ms=400`))
    await sleep(100)
    const res = await fetchRaw(`${url}/throw-later`, { method: 'POST', body: '' })
    assert.equal(res.status, 500, res.body.toString())
    assert.equal(res.headers['x-ferry-error'], 'FERRY_ERR_APP_UNCAUGHT')
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200, r.body.toString())
    const line = await app.waitFor((l) => l.code === 'FERRY_ERR_APP_UNCAUGHT')
    assert.equal(line.level, 50)
    assert.equal(typeof line.reqId, 'string')
    assert.match(JSON.stringify(line.err), /thrown later/)
    await sleep(300)
    assert.equal(app.lines.filter((l) => l.msg === 'direct thread replaced').length, replacedBefore, 'the thread was replaced')
    const text = await metrics(stats)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 1, text)
    assert.equal(sampleOf(text, 'ferry_app_requests_total{status="500"}'), 1, text)
  })

  test('an error no running request owns ends the thread: logged once with the error, replaced', async () => {
    const replacedBefore = app.lines.filter((l) => l.msg === 'direct thread replaced').length
    const crashedBefore = app.lines.filter((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED').length
    const ids = [...directIds, ...app.lines.filter((l) => l.msg === 'direct thread replaced').map((l) => l.threadId as number)]
    await untilDirect(url, ids)
    // answered at once; the timer it leaves behind throws 100 ms later, when no request owns it
    const first = await fetchRaw(`${url}/throw-after`)
    assert.equal(first.status, 200)
    await until('a second "direct thread replaced"', () => app.lines.filter((l) => l.msg === 'direct thread replaced').length > replacedBefore)
    const crashed = app.lines.filter((l) => l.code === 'FERRY_ERR_APP_WORKER_CRASHED').slice(crashedBefore)
    assert.equal(crashed.length, 1, JSON.stringify(crashed))
    assert.equal(crashed[0]!.level, 50)
    assert.match(crashed[0]!.msg as string, /outside any running request/)
    assert.match(JSON.stringify(crashed[0]!.err), /thrown after/)
    const answers = await batch(url, 20)
    assert.equal(answers.length, 20)
    assert.equal(ejected(front).length, 0, JSON.stringify(ejected(front)))
    const text = await metrics(stats)
    assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 2, text)
    assert.equal(sampleOf(text, 'ferry_app_direct_threads'), 2, text)
  })
})

test('a node frozen past --timeout (SIGSTOP, a suspended VM) does not call its threads stuck when it runs again', async (t) => {
  // --timeout 1 s: a thread whose beat stood still for 1 s + a tick (250 ms) is replaced —
  // but here the whole process stood still, the watchdog with it
  const { app, directIds, url } = await startBehindFront(t, ['--timeout', '1'])
  await seeAll(url, directIds, (id) => directIds.includes(id))
  const pid = app.child.pid!
  t.after(() => { try { process.kill(pid, 'SIGCONT') } catch {} })
  process.kill(pid, 'SIGSTOP')
  await sleep(3000)
  process.kill(pid, 'SIGCONT')
  await sleep(1000) // four watchdog ticks
  await seeAll(url, directIds, (id) => directIds.includes(id))
  assert.equal(app.lines.find((l) => l.code === 'FERRY_ERR_APP_WORKER_REPLACED'), undefined, 'a thread was replaced after the freeze')
})

test('--max-uncaught: a thread that reached it is replaced gracefully, no request lost', async (t) => {
  const { app, directIds, stats, url } = await startBehindFront(t, ['--max-uncaught', '2', '--stats', '127.0.0.1:0'])
  // sequential requests go to the thread session with the fewest open streams, the first on a
  // tie: the throws land on one thread until it is recycled (at most 3 needed over 2 threads)
  const asked = (): boolean => app.lines.some((l) => l.msg === 'recycling direct thread (max-uncaught): a fresh one takes its addresses, the old one finishes its requests')
  const good: Promise<Res>[] = []
  for (let i = 0; i < 3 && !asked(); i++) {
    good.push(fetchRaw(`${url}/slow?ms=300`))
    const res = await fetchRaw(`${url}/throw-later`, { method: 'POST', body: '' })
    assert.equal(res.status, 500, res.body.toString())
    for (let w = 0; w < 25 && !asked(); w++) await sleep(20)
  }
  const recycling = await app.waitFor((l) => l.msg === 'recycling direct thread (max-uncaught): a fresh one takes its addresses, the old one finishes its requests')
  const recycled = await app.waitFor((l) => l.msg === 'direct thread recycled')
  assert.equal(recycled.direct, recycling.direct)
  assert.ok(!directIds.includes(recycled.threadId as number))
  for (const r of await Promise.all(good)) assert.equal(r.status, 200, r.body.toString())
  for (const w of await batch(url, 20)) assert.ok(w.threadId !== recycling.threadId, 'the recycled thread still answers')
  const text = await metrics(stats!)
  assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="recycled"}'), 1, text)
  assert.equal(sampleOf(text, 'ferry_app_direct_events_total{event="crashed"}'), 0, text)
})

test('SIGHUP: the threads are swapped for fresh ones (new code) with every request answered', async (t) => {
  const dir = tempDir(t)
  const sock = join(dir, 'app.sock')
  const versionFile = join(dir, 'version.txt')
  writeFileSync(versionFile, 'v1')
  const { app, directIds, front, url } = await startBehindFront(t, [], { VERSION_FILE: versionFile }, dir)
  const uwsgi = await startFront(t, ['--upstream', `uwsgi+unix:${sock}`])
  const uwsgiUrl = baseUrl(uwsgi.addresses[0]!)
  for (const w of await batch(url, 10)) {
    assert.ok(directIds.includes(w.threadId))
    assert.equal(w.version, 'v1')
  }

  writeFileSync(versionFile, 'v2')
  let reloaded = false
  const statuses: number[] = []
  const loop = async (): Promise<void> => {
    while (!reloaded) statuses.push((await fetchRaw(`${url}/who`)).status)
  }
  const loops = [loop(), loop(), loop(), loop()]
  app.child.kill('SIGHUP')
  try {
    await app.waitFor((l) => l.msg === 'direct threads reloaded', 20000)
  } finally {
    reloaded = true
    await Promise.all(loops)
  }
  t.diagnostic(`${statuses.length} requests during the reload`)
  assert.ok(statuses.length >= 4, `only ${statuses.length} requests during the reload`)
  const bad = statuses.filter((s) => s !== 200)
  assert.deepEqual(bad, [], `${bad.length} of ${statuses.length} requests failed during the reload`)
  assert.equal(app.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('reload: the new direct thread did not start')).length, 0)

  // the pool's thread (through uwsgi) runs the new code too; the direct threads are the others
  const pool = await who(uwsgiUrl)
  assert.equal(pool.version, 'v2')
  assert.ok(!directIds.includes(pool.threadId))
  const seen = new Map<number, string>()
  await until('both new direct threads answering', async () => {
    for (const w of await batch(url, 40)) seen.set(w.threadId, w.version)
    return [...seen.keys()].filter((id) => id !== pool.threadId).length >= 2
  }, 15000)
  for (const [id, version] of seen) {
    assert.ok(!directIds.includes(id), `old direct thread ${id} answered after the reload`)
    assert.equal(version, 'v2', `thread ${id} answered ${version}`)
  }
  assert.equal(ejected(front).length, 0)
})

test('SIGTERM: a request in flight on a thread completes, exit 0, every socket file removed', async (t) => {
  const { app, directIds, stats, sock, url } = await startBehindFront(t, ['--graceful-timeout', '10', '--stats', '127.0.0.1:0'])
  const slow = fetchRaw(`${url}/slow?ms=1500`)
  // in flight on a thread's connection: some native stream is open
  await until('the slow request open on a connection', async () => {
    const text = await metrics(stats!)
    return text.split('\n').some((l) => l.startsWith('ferry_app_native_streams{') && Number(l.split(' ')[1]) > 0)
  })
  app.child.kill('SIGTERM')
  const res = await slow
  const w = parseWho(res)
  assert.ok(directIds.includes(w.threadId), `served by ${w.threadId}, not a direct thread`)
  let timer: NodeJS.Timeout | undefined
  const code = await Promise.race([app.exited, new Promise((resolve) => { timer = setTimeout(resolve, 15000, 'still running') })])
  clearTimeout(timer)
  assert.equal(code, 0)
  for (const p of [sock, `${sock}.1`, `${sock}.2`]) assert.ok(!existsSync(p), `${p} still exists`)
})
