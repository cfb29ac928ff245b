/**
 * Pure parts of the front: the balancer (power of two choices), option checks with their
 * codes, the request-head builder's hop-by-hop rules, and the CLI's answers to bad input.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import { FRONT_ERRORS, normalizeOptions, pick, type Pickable } from '@ferry/front'
import { CLI } from './helpers.ts'

class N implements Pickable {
  constructor (public name: string, public outstanding = 0, public served = 0, public ok = true) {}
  usable (): boolean { return this.ok }
}

function seq (...values: number[]): () => number {
  let i = 0
  return () => values[i++ % values.length]!
}

test('pick: the less loaded of two random nodes; ties to the one that served fewer', () => {
  const a = new N('a', 5)
  const b = new N('b', 1)
  const c = new N('c', 3)
  assert.equal(pick([a, b, c], 0, null, seq(0, 0)), b) // samples a and b
  assert.equal(pick([a, b, c], 0, null, seq(0, 0.5)), c) // samples a and c
  const x = new N('x', 0, 10)
  const y = new N('y', 0, 3)
  assert.equal(pick([x, y], 0, null, seq(0, 0)), y)
})

test('pick: skips unusable and excluded nodes; null when none is left', () => {
  const a = new N('a', 0, 0, false)
  const b = new N('b', 9)
  const c = new N('c', 0, 0, false)
  assert.equal(pick([a, b, c], 0, null, seq(0, 0.9)), b) // both samples unusable → scan
  assert.equal(pick([a, b, c], 0, b), null)
  assert.equal(pick([], 0), null)
  assert.equal(pick([b], 0, b), null)
  assert.equal(pick([b], 0), b)
})

test('pick: 3000 picks over idle nodes spread within 1%', () => {
  const nodes = [new N('a'), new N('b'), new N('c')]
  for (let i = 0; i < 3000; i++) pick(nodes, 0)!.served++
  for (const n of nodes) assert.ok(Math.abs(n.served - 1000) <= 10, `${n.name}: ${n.served}`)
})

test('options: bad values are FERRY_ERR_FRONT_CONFIG / _UNKNOWN_POOL', () => {
  const code = (fn: () => unknown): string => {
    try {
      fn()
    } catch (err) {
      return (err as { code: string }).code
    }
    return 'no error'
  }
  assert.equal(code(() => normalizeOptions({ upstreams: ['http://x'] })), 'FERRY_ERR_FRONT_CONFIG')
  assert.equal(code(() => normalizeOptions({ upstreams: ['dns://no-port'] })), 'FERRY_ERR_FRONT_CONFIG')
  assert.equal(code(() => normalizeOptions({ upstreams: ['unix:/a'], timeout: -1 })), 'FERRY_ERR_FRONT_CONFIG')
  assert.equal(code(() => normalizeOptions({ upstreams: ['unix:/a'], routes: [{ prefix: '/api', pool: 'nope' }] })), 'FERRY_ERR_FRONT_UNKNOWN_POOL')
  assert.equal(code(() => normalizeOptions({ upstreams: ['unix:/a'], routes: [{ prefix: 'api', pool: 'default' }] })), 'FERRY_ERR_FRONT_CONFIG')
  const o = normalizeOptions({ pools: { api: { upstreams: ['unix:/a', 'uwsgi+tcp://127.0.0.1:9', 'dns://app.internal:8001'] } }, routes: [{ prefix: '/api/', pool: 'api' }] })
  assert.equal(o.catchAll, false)
  assert.equal(o.routes[0]!.prefix, '/api')
  assert.equal(o.pools.api!.sessions, 2)
  assert.equal(o.pools.api!.maxFails, 1)
  for (const [k, v] of Object.entries(FRONT_ERRORS)) {
    assert.match(k, /^FERRY_ERR_FRONT_[A-Z_]+$/)
    assert.ok(v.statusCode >= 400 && v.statusCode < 600)
  }
})

test('ferry front: bad flags and nothing to serve exit 2 with a coded message; --help documents the anchors', () => {
  const bad = spawnSync(process.execPath, [CLI, 'front', '--bogus'], { encoding: 'utf8' })
  assert.equal(bad.status, 2)
  assert.match(bad.stderr, /FERRY_ERR_FRONT_CONFIG/)
  const empty = spawnSync(process.execPath, [CLI, 'front', '--listen', '127.0.0.1:0'], { encoding: 'utf8', env: { ...process.env, FERRY_FRONT_UPSTREAM: '' } })
  assert.equal(empty.status, 2)
  assert.match(empty.stderr, /nothing to serve/)
  const size = spawnSync(process.execPath, [CLI, 'front', '--upstream', 'unix:/x', '--max-body', 'lots'], { encoding: 'utf8' })
  assert.equal(size.status, 2)
  assert.match(size.stderr, /--max-body/)
  const help = spawnSync(process.execPath, [CLI, 'front', '--help'], { encoding: 'utf8' })
  assert.equal(help.status, 0)
  for (const anchor of ['max_fails', 'fail_timeout', 'proxy_next_upstream', 'client_max_body_size', 'forwarded_allow_ips', 'FERRY_FRONT_']) {
    assert.ok(help.stdout.includes(anchor), anchor)
  }
})
