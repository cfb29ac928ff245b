/**
 * Node sets from DNS, against a real DNS server (test/helpers/dns-server.ts, UDP on
 * 127.0.0.1) named with --resolver: srv:// names (SRV records → their targets' A records →
 * nodes on the records' ports), dns:// names resolved by that server, the node set following
 * the table while it changes (new nodes get traffic, removed ones drain, no request fails),
 * RFC 2782 priorities, a DNS server that stops answering, and the config errors.
 * The app nodes are real `ferry app` processes answering with their name in x-node.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { normalizeOptions } from '@ferry/front'
import { type DnsEntry, type SrvRecord, startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts'
import { baseUrl, CLI, fetchRaw, fileHooks, type Proc, sleep, startFront, startProc, tempDir } from './helpers.ts'

const hooks = fileHooks(after)
const SRV = '_ferry._tcp.test.internal'
const HANDLER = 'test/fixtures/handlers/named.ts'

/** The app nodes every test shares: name → port (all on 127.0.0.1). */
const port: Record<string, number> = {}

function startApp (name: string, listen: string): Promise<Proc> {
  return startProc(hooks, [CLI, 'app', HANDLER, '--listen', listen, '--threads', '0', '--log-level', 'warn'], { env: { FERRY_TEST_NODE: name } })
}

const portOf = (address: string): number => Number(address.split(':').pop())

before(async () => {
  const procs = await Promise.all(['a', 'b', 'c'].map((n) => startApp(n, 'tcp://127.0.0.1:0')))
  procs.forEach((p, i) => { port['abc'[i]!] = portOf(p.addresses[0]!) })
})

/** A DNS server for one test: a.test.internal, b…, c… → 127.0.0.1, and the SRV name. */
async function dnsWith (t: { after: (fn: () => Promise<void> | void) => void }, srv: SrvRecord[]): Promise<TestDnsServer> {
  const dns = await startDnsServer(t)
  for (const n of ['a', 'b', 'c']) dns.set(`${n}.test.internal`, { a: ['127.0.0.1'] })
  dns.set(SRV, { srv })
  return dns
}

const rec = (name: string, priority = 10, weight = 1): SrvRecord => ({ priority, weight, port: port[name]!, target: `${name}.test.internal` })
const nodeOf = (name: string): string => `tcp://127.0.0.1:${port[name]}`

async function front (dns: TestDnsServer, upstreams: string[] = [`srv://${SRV}`], extra: string[] = []): Promise<Proc> {
  return startFront(hooks, [...upstreams.flatMap((u) => ['--upstream', u]), '--resolver', dns.address, '--dns-interval', '200ms', ...extra])
}

/** Waits for the front to log that its node set is exactly `nodes` (from log line `from` on). */
async function nodesBecome (f: Proc, nodes: string[], from = 0, ms = 5000): Promise<void> {
  const want = [...nodes].sort().join(' ')
  await f.waitFor((l) => l.msg === 'upstream nodes changed' && f.lines.indexOf(l) >= from && [...(l.nodes as string[])].sort().join(' ') === want, ms)
}

/** `n` sequential requests; how many each node answered. Every answer must be 200. */
async function hits (f: Proc, n: number): Promise<Record<string, number>> {
  const url = baseUrl(f.addresses[0]!)
  const out: Record<string, number> = {}
  for (let i = 0; i < n; i++) {
    const res = await fetchRaw(`${url}/hello`)
    assert.equal(res.status, 200, res.body.toString())
    const node = String(res.headers['x-node'])
    out[node] = (out[node] ?? 0) + 1
  }
  return out
}

/** Requests until `node` answers one (a new node connects first), at most `ms`. */
async function reaches (f: Proc, node: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if ((await hits(f, 1))[node] !== undefined) return
    await sleep(20)
  }
  assert.fail(`no request reached ${node} within ${ms} ms`)
}

test('srv://: requests reach every node the SRV records name, on the records\' ports', async (t) => {
  const dns = await dnsWith(t, [rec('a'), rec('b', 10, 50), rec('c', 10, 0)])
  const f = await front(dns)
  await nodesBecome(f, [nodeOf('a'), nodeOf('b'), nodeOf('c')])
  for (const n of ['a', 'b', 'c']) await reaches(f, n)
  const spread = await hits(f, 30)
  // weights (1, 50, 0) are not used: least-outstanding balancing spreads a sequential load evenly
  assert.deepEqual(Object.keys(spread).sort(), ['a', 'b', 'c'])
  for (const n of ['a', 'b', 'c']) assert.ok(spread[n]! >= 5, `${n}: ${JSON.stringify(spread)}`)
  const asked = dns.queries.filter((q) => q.name === SRV.toLowerCase() && q.type === 33)
  assert.ok(asked.length >= 1, 'the front asked the test server for the SRV records')
})

test('uwsgi+srv:// gives uwsgi+tcp:// nodes (the app node answers uwsgi on the same listener)', async (t) => {
  const dns = await dnsWith(t, [rec('a'), rec('b')])
  const f = await front(dns, [`uwsgi+srv://${SRV}`])
  await nodesBecome(f, [`uwsgi+${nodeOf('a')}`, `uwsgi+${nodeOf('b')}`])
  for (const n of ['a', 'b']) await reaches(f, n)
})

test('srv://: the node set follows the table — an added node gets traffic, a removed one drains, no request fails', async (t) => {
  const dns = await dnsWith(t, [rec('a'), rec('b')])
  const f = await front(dns)
  await nodesBecome(f, [nodeOf('a'), nodeOf('b')])
  await reaches(f, 'a')
  await reaches(f, 'b')
  const url = baseUrl(f.addresses[0]!)
  // A small steady load: 3 clients, each request 10 ms at the node.
  let removedAt = Number.POSITIVE_INFINITY
  let stop = false
  const results: Array<{ status: number, node: string, afterRemoval: boolean }> = []
  const client = async (): Promise<void> => {
    while (!stop) {
      const afterRemoval = Date.now() > removedAt
      const res = await fetchRaw(`${url}/slow?ms=10`)
      results.push({ status: res.status, node: String(res.headers['x-node']), afterRemoval })
    }
  }
  const load = Promise.all([client(), client(), client()])
  try {
    let from = f.lines.length
    dns.set(SRV, { srv: [rec('a'), rec('b'), rec('c')] })
    await nodesBecome(f, [nodeOf('a'), nodeOf('b'), nodeOf('c')], from)
    const end = Date.now() + 5000
    while (!results.some((r) => r.node === 'c') && Date.now() < end) await sleep(20)
    assert.ok(results.some((r) => r.node === 'c'), 'the added node gets traffic')
    // Long requests in flight on every node while a leaves the set: a must finish its own.
    const long = Array.from({ length: 12 }, () => fetchRaw(`${url}/slow?ms=1200`))
    await sleep(300)
    from = f.lines.length
    dns.set(SRV, { srv: [rec('b'), rec('c')] })
    await nodesBecome(f, [nodeOf('b'), nodeOf('c')], from)
    removedAt = Date.now()
    const longDone = await Promise.all(long)
    assert.deepEqual(longDone.map((r) => r.status), new Array(12).fill(200))
    assert.ok(longDone.some((r) => r.headers['x-node'] === 'a'), 'a long request ran on a when it was removed, and finished')
    await sleep(500)
  } finally {
    stop = true
    await load
  }
  assert.ok(results.length > 20, `steady load ran (${results.length} requests)`)
  assert.deepEqual(results.filter((r) => r.status !== 200), [], 'no request failed during the changes')
  const late = results.filter((r) => r.afterRemoval)
  assert.ok(late.length > 0)
  assert.deepEqual(late.filter((r) => r.node === 'a'), [], 'no request started after the removal went to a')
})

test('srv://: the lowest priority value with an address wins; higher values are backups; "." gives no node', async (t) => {
  const dns = await dnsWith(t, [rec('a', 10), rec('b', 10), rec('c', 20)])
  const f = await front(dns)
  await nodesBecome(f, [nodeOf('a'), nodeOf('b')])
  await reaches(f, 'a')
  await reaches(f, 'b')
  const spread = await hits(f, 20)
  assert.equal(spread.c, undefined, `priority 20 is not used while priority 10 resolves: ${JSON.stringify(spread)}`)
  // priority 10's targets lose their addresses (NXDOMAIN): priority 20 takes over
  let from = f.lines.length
  dns.delete('a.test.internal')
  dns.delete('b.test.internal')
  await nodesBecome(f, [nodeOf('c')], from)
  await reaches(f, 'c')
  // one target of priority 10 back: only it
  from = f.lines.length
  dns.set('b.test.internal', { a: ['127.0.0.1'] })
  await nodesBecome(f, [nodeOf('b')], from)
  await reaches(f, 'b')
  assert.deepEqual(Object.keys(await hits(f, 10)), ['b'])
  // target "." alone: the service is decidedly not available, no node (503)
  from = f.lines.length
  dns.set(SRV, { srv: [{ priority: 0, weight: 0, port: 0, target: '.' }] })
  await nodesBecome(f, [], from)
  const res = await fetchRaw(`${baseUrl(f.addresses[0]!)}/hello`)
  assert.equal(res.status, 503)
  assert.equal((JSON.parse(res.body.toString()) as { code: string }).code, 'FERRY_ERR_FRONT_NO_HEALTHY_NODE')
})

test('a DNS server that stops answering, then answers SERVFAIL: the front keeps the last known nodes and logs a warning; a failing SRV target keeps its addresses', async (t) => {
  const dns = await dnsWith(t, [rec('a'), rec('b')])
  const f = await front(dns)
  await nodesBecome(f, [nodeOf('a'), nodeOf('b')])
  const failed = (code: string, from: number): Promise<Record<string, unknown>> => f.waitFor((l) => l.msg === 'dns lookup failed; keeping the last known nodes' && f.lines.indexOf(l) >= from && String(l.err).includes(code), 5000)
  for (const [mode, code] of [['silent', 'ETIMEOUT'], ['servfail', 'ESERVFAIL']] as const) {
    const from = f.lines.length
    dns.mode = mode
    const warn = await failed(code, from)
    assert.equal(warn.level, 40)
    assert.equal(warn.name, SRV)
    assert.equal(warn.type, 'SRV')
    await failed(code, f.lines.indexOf(warn) + 1) // and again on the next interval
    const spread = await hits(f, 20)
    assert.deepEqual(Object.keys(spread).sort(), ['a', 'b'], `${mode}: ${JSON.stringify(spread)}`)
  }
  // the SRV records answer, one target does not (SERVFAIL): it keeps its last addresses
  dns.mode = 'answer'
  dns.servfail.add('b.test.internal')
  let from = f.lines.length
  const kept = await f.waitFor((l) => l.msg === 'dns lookup of an SRV target failed; keeping its last known addresses' && f.lines.indexOf(l) >= from, 5000)
  assert.equal(kept.target, 'b.test.internal')
  assert.deepEqual(Object.keys(await hits(f, 20)).sort(), ['a', 'b'])
  assert.ok(!f.lines.some((l) => l.msg === 'upstream nodes changed' && (l.nodes as string[]).length < 2), 'the node set never shrank')
  // the target answers NXDOMAIN (gone): its node drains
  from = f.lines.length
  dns.servfail.clear()
  dns.delete('b.test.internal')
  await nodesBecome(f, [nodeOf('a')], from)
  // the set follows the table again
  from = f.lines.length
  dns.set(SRV, { srv: [rec('c')] })
  await nodesBecome(f, [nodeOf('c')], from)
  await reaches(f, 'c')
})

test('dns://name:port with --resolver: A records from the test server (several addresses), not only localhost', async (t) => {
  // two nodes on one port, on two loopback addresses: one name, two A records
  const e1 = await startApp('e1', 'tcp://127.0.0.2:0')
  const p = portOf(e1.addresses[0]!)
  await startApp('e2', `tcp://127.0.0.3:${p}`)
  const dns = await startDnsServer(t)
  dns.set('app.test.internal', { a: ['127.0.0.2', '127.0.0.3'] } satisfies DnsEntry)
  const f = await front(dns, [`dns://app.test.internal:${p}`, 'dns://nowhere.test.internal:8001', `dns://localhost:${port.a}`])
  await nodesBecome(f, [`tcp://127.0.0.2:${p}`, `tcp://127.0.0.3:${p}`, nodeOf('a')])
  for (const n of ['e1', 'e2', 'a']) await reaches(f, n)
  assert.ok(dns.queries.some((q) => q.name === 'app.test.internal' && q.type === 1 && q.answers === 2), 'A records came from the test server')
  // a name the server does not know: asked of it (NXDOMAIN), no node, a warning; the other names serve
  const warn = await f.waitFor((l) => l.msg === 'dns lookup failed; keeping the last known nodes' && l.name === 'nowhere.test.internal')
  assert.match(String(warn.err), /ENOTFOUND/)
  assert.ok(dns.queries.some((q) => q.name === 'nowhere.test.internal' && q.rcode === 3))
  assert.ok(!dns.queries.some((q) => q.name === 'localhost'), 'localhost is not asked of the DNS server')
  // the A records change: one address left
  const from = f.lines.length
  dns.set('app.test.internal', { a: ['127.0.0.3'] })
  await nodesBecome(f, [`tcp://127.0.0.3:${p}`, nodeOf('a')], from)
})

test('config errors: bad srv:// forms and bad --resolver values exit 2 with FERRY_ERR_FRONT_CONFIG', () => {
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn()
    } catch (err) {
      return (err as { code?: string }).code
    }
    return undefined
  }
  for (const u of ['srv://', 'srv://_ferry._tcp.app.internal:8001', 'uwsgi+srv://a..b', 'srv://.', 'srv://a b', `srv://${'x'.repeat(64)}.internal`, 'dns://app.internal', 'dns://:8001', 'dns://app.internal:0']) {
    assert.equal(code(() => normalizeOptions({ upstreams: [u] })), 'FERRY_ERR_FRONT_CONFIG', u)
  }
  for (const u of ['srv://_ferry._tcp.app.default.svc.cluster.local', 'uwsgi+srv://_api._tcp.service.consul.', 'srv://web.service.consul/']) {
    assert.equal(code(() => normalizeOptions({ upstreams: [u] })), undefined, u)
  }
  for (const r of ['localhost', 'dns.internal:53', '10.0.0.1:99999', '10.0.0.1:', '10.0.0.1:0', '[::1]:x', '', '300.1.1.1']) {
    assert.equal(code(() => normalizeOptions({ upstreams: ['srv://x.internal'], resolver: [r] })), 'FERRY_ERR_FRONT_CONFIG', r)
  }
  assert.equal(code(() => normalizeOptions({ upstreams: ['srv://x.internal'], resolver: '10.0.0.1' as unknown as string[] })), 'FERRY_ERR_FRONT_CONFIG')
  assert.equal(code(() => normalizeOptions({ upstreams: ['tcp://127.0.0.1:1'], resolver: ['10.0.0.1'] })), 'FERRY_ERR_FRONT_CONFIG', 'a resolver with nothing to resolve')
  // the forms Resolver#setServers takes, port 53 when none is given
  const servers = normalizeOptions({ upstreams: ['srv://x.internal'], resolver: ['10.0.0.2', '10.0.0.2:5353', '::1', '[::1]', '[fd00::2]:5353'] }).resolver
  assert.deepEqual(servers, ['10.0.0.2:53', '10.0.0.2:5353', '[::1]:53', '[::1]:53', '[fd00::2]:5353'])

  const dir = tempDir(hooks)
  const config = join(dir, 'front.json')
  writeFileSync(config, JSON.stringify({ upstreams: ['srv://_ferry._tcp.test.internal'], resolver: ['dns.example'] }))
  const runs: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
    [['--upstream', 'srv://_ferry._tcp.app.internal:8001'], {}, /srv:\/\/name.*no port/],
    [['--upstream', 'srv://'], {}, /expected srv:\/\/name/],
    [['--upstream', 'srv://x.internal', '--resolver', '127.0.0.1:70000'], {}, /resolver "127\.0\.0\.1:70000": bad port/],
    [['--upstream', 'srv://x.internal'], { FERRY_FRONT_RESOLVER: '127.0.0.1,bogus' }, /resolver "bogus"/],
    [['--config', config], {}, /resolver "dns\.example"/],
    [['--upstream', 'tcp://127.0.0.1:1', '--resolver', '127.0.0.1'], {}, /would resolve nothing/]
  ]
  for (const [args, env, message] of runs) {
    const r = spawnSync(process.execPath, [CLI, 'front', '--listen', '127.0.0.1:0', '--no-access-log', ...args], { encoding: 'utf8', timeout: 15000, env: { ...process.env, ...env } })
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
    assert.match(r.stderr, /FERRY_ERR_FRONT_CONFIG/)
    assert.match(r.stderr, message)
  }
})

test('the resolver: config file, environment over it, flag over both; SIGHUP keeps the running servers, a bad form at SIGHUP changes nothing; --help', async (t) => {
  const dns = await dnsWith(t, [rec('a')])
  const dir = tempDir(hooks)
  const config = join(dir, 'front.json')
  const write = (resolver: string[]): void => { writeFileSync(config, JSON.stringify({ upstreams: [`srv://${SRV}`], resolver, dnsInterval: 200 })) }
  write([dns.address])
  const f = await startFront(hooks, ['--config', config])
  await nodesBecome(f, [nodeOf('a')])
  await reaches(f, 'a')
  // a changed resolver in the file: a warning at SIGHUP, the names still go to the running server
  write(['127.0.0.1:1'])
  let from = f.lines.length
  f.child.kill('SIGHUP')
  const warn = await f.waitFor((l) => f.lines.indexOf(l) >= from && String(l.msg).startsWith('SIGHUP: the resolver setting changed'))
  assert.deepEqual(warn.resolver, ['127.0.0.1:1'])
  await f.waitFor((l) => f.lines.indexOf(l) >= from && l.msg === 'reloaded upstreams')
  from = f.lines.length
  dns.set(SRV, { srv: [rec('b')] })
  await nodesBecome(f, [nodeOf('b')], from)
  // a bad srv:// form at SIGHUP: an error, and the running names go on being watched
  writeFileSync(config, JSON.stringify({ upstreams: [`srv://${SRV}:8001`], resolver: [dns.address], dnsInterval: 200 }))
  from = f.lines.length
  f.child.kill('SIGHUP')
  const failed = await f.waitFor((l) => f.lines.indexOf(l) >= from && l.msg === 'SIGHUP: reload failed')
  assert.equal((failed.err as { code?: string }).code, 'FERRY_ERR_FRONT_CONFIG')
  from = f.lines.length
  dns.set(SRV, { srv: [rec('a'), rec('b')] })
  await nodesBecome(f, [nodeOf('a'), nodeOf('b')], from)
  write([dns.address])
  // the environment's server (a second test server) wins over the file's (nothing listens on port 1)
  const dns2 = await dnsWith(t, [rec('c')])
  const g = await startFront(hooks, ['--config', config], { FERRY_FRONT_RESOLVER: dns2.address })
  await nodesBecome(g, [nodeOf('c')])
  await reaches(g, 'c')
  // a flag wins over the environment
  const h = await startFront(hooks, ['--config', config, '--resolver', dns.address], { FERRY_FRONT_RESOLVER: dns2.address })
  await nodesBecome(h, [nodeOf('a'), nodeOf('b')])
  await reaches(h, 'b')

  const help = spawnSync(process.execPath, [CLI, 'front', '--help'], { encoding: 'utf8' }).stdout
  for (const s of ['srv://<name>', 'uwsgi+srv://', '--resolver <ip[:port]>', 'nginx: resolver', 'service=_ferry._tcp resolve', 'lowest priority value', 'Weights are not used', 'target "."']) {
    assert.ok(help.includes(s), s)
  }
})
