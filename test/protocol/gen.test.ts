/**
 * Generated protobuf code must be what scripts/gen-proto.mjs produces from proto/ferry.proto
 * today: a stale packages/protocol/gen/ fails here (fix: `npm run gen` and commit).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

const root = new URL('../../', import.meta.url)

test('packages/protocol/gen/ferry.{js,d.ts} are up to date with proto/ferry.proto', () => {
  const out = execFileSync(process.execPath, [new URL('scripts/gen-proto.mjs', root).pathname, '--stdout'], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
    timeout: 30000
  })
  const generated = JSON.parse(out) as { js: string, dts: string }
  const js = readFileSync(new URL('packages/protocol/gen/ferry.js', root), 'utf8')
  const dts = readFileSync(new URL('packages/protocol/gen/ferry.d.ts', root), 'utf8')
  assert.ok(generated.js.length > 1000 && generated.js.includes('RequestHead'), 'the generator produced code')
  assert.equal(js, generated.js, 'packages/protocol/gen/ferry.js is stale: run `npm run gen`')
  assert.equal(dts, generated.dts, 'packages/protocol/gen/ferry.d.ts is stale: run `npm run gen`')
})
