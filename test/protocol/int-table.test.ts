/**
 * IntTable (streams, pool calls, worker jobs by id): every operation checked against a Map
 * under the traffic it serves (a sliding window of counter ids, a long-lived id that the
 * counter laps, bursts that grow and shrink the arrays) and at the edges of the id range.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { IntTable } from '@ferry/protocol'

/** Deterministic PRNG (mulberry32) so a failure replays. */
function rng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function same (table: IntTable<string>, model: Map<number, string>, probe: number[]): void {
  assert.equal(table.size, model.size)
  for (const id of probe) assert.equal(table.get(id), model.get(id), `get(${id})`)
  assert.deepEqual(table.values(), [...model.keys()].sort((a, b) => a - b).map((id) => model.get(id)))
}

describe('IntTable', () => {
  test('a sliding window of counter ids with one id that stays (the counter laps it many times)', () => {
    const t = new IntTable<string>()
    const m = new Map<number, string>()
    const random = rng(1)
    t.set(7, 'long-lived')
    m.set(7, 'long-lived')
    let next = 9
    const live: number[] = []
    for (let i = 0; i < 20000; i++) {
      if (live.length < 50 || random() < 0.5) {
        const id = next
        next += 2 // stream ids of one side: odd only
        t.set(id, `v${id}`)
        m.set(id, `v${id}`)
        live.push(id)
      } else {
        const id = live.splice(Math.floor(random() * live.length), 1)[0]!
        assert.equal(t.delete(id), true)
        m.delete(id)
        assert.equal(t.delete(id), false, 'a second delete finds nothing')
      }
      if (i % 997 === 0) same(t, m, [7, next, next - 2, ...live.slice(0, 10)])
    }
    assert.equal(t.get(7), 'long-lived')
    same(t, m, [7, ...live])
  })

  test('random inserts, overwrites and deletes over a small key space (long probe runs, wrap-around)', () => {
    const t = new IntTable<string>()
    const m = new Map<number, string>()
    const random = rng(2)
    for (let i = 0; i < 50000; i++) {
      // 40 × 2 × 2 keys over many inserts and deletes: probe runs of every shape
      const id = Math.floor(random() * 40) * (random() < 0.5 ? 16 : 64) + (random() < 0.2 ? 15 : 0)
      const r = random()
      if (r < 0.55) {
        t.set(id, `v${i}`)
        m.set(id, `v${i}`)
      } else {
        assert.equal(t.delete(id), m.delete(id), `delete(${id})`)
      }
      if (i % 1000 === 0) same(t, m, [id, id + 1, 0, 15, 16, 64])
    }
    same(t, m, Array.from({ length: 2600 }, (_, i) => i))
  })

  test('a burst grows the arrays and its end shrinks them; every id stays reachable', () => {
    const t = new IntTable<string>()
    const m = new Map<number, string>()
    for (let id = 0; id < 100000; id++) {
      t.set(id, `v${id}`)
      m.set(id, `v${id}`)
    }
    same(t, m, [0, 1, 65535, 65536, 99999, 100000])
    for (let id = 0; id < 99990; id++) {
      assert.equal(t.delete(id), true)
      m.delete(id)
    }
    same(t, m, [0, 99989, 99990, 99999])
    t.set(5, 'again')
    assert.equal(t.get(5), 'again')
  })

  test('ids past 2^31 and 2^32 (counters of a long-running process)', () => {
    const t = new IntTable<string>()
    const ids = [2 ** 31 - 1, 2 ** 31, 2 ** 31 + 16, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 16, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER, 0, 16]
    for (const id of ids) t.set(id, String(id))
    for (const id of ids) assert.equal(t.get(id), String(id))
    assert.deepEqual(t.values(), [...ids].sort((a, b) => a - b).map(String))
    assert.equal(t.delete(2 ** 32), true)
    assert.equal(t.get(2 ** 32), undefined)
    assert.equal(t.get(2 ** 32 + 16), String(2 ** 32 + 16))
    assert.equal(t.get(0), '0')
  })

  test('clear empties the table and it works afterwards', () => {
    const t = new IntTable<string>()
    for (let id = 0; id < 100; id++) t.set(id, 'x')
    t.clear()
    assert.equal(t.size, 0)
    assert.equal(t.get(3), undefined)
    assert.deepEqual(t.values(), [])
    t.set(3, 'y')
    assert.equal(t.get(3), 'y')
    assert.equal(t.size, 1)
  })
})
