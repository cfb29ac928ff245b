/**
 * Every error code is documented: each key of PROTOCOL_ERRORS, and of the app-server's and
 * the front's code tables (APP_SERVER_ERRORS, FRONT_ERRORS) where those packages have one,
 * appears in docs/protocol.md or docs/errors.md. (fastify test/internals/errors.test.js)
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { test } from 'node:test'
import { PROTOCOL_ERRORS } from '@ferry/protocol'

const root = new URL('../../', import.meta.url)

function docs (): string {
  let text = ''
  for (const f of ['docs/protocol.md', 'docs/errors.md']) {
    const u = new URL(f, root)
    if (existsSync(u)) text += readFileSync(u, 'utf8')
  }
  return text
}

function undocumented (codes: string[], text: string): string[] {
  return codes.filter((c) => !new RegExp(`\\b${c}\\b`).test(text))
}

/**
 * A package's code table: from the package entry when it builds one, else from its
 * src/errors.ts (tsx runs it). Undefined when the package has no such table (yet).
 */
async function table (pkg: string, dir: string, name: string): Promise<Record<string, unknown> | undefined> {
  try {
    const mod = (await import(pkg)) as Record<string, unknown>
    if (mod[name] !== undefined) return mod[name] as Record<string, unknown>
  } catch {}
  const src = new URL(`packages/${dir}/src/errors.ts`, root)
  if (!existsSync(src)) return undefined
  const mod = (await import(src.href)) as Record<string, unknown>
  return mod[name] as Record<string, unknown> | undefined
}

test('every PROTOCOL_ERRORS code is in docs/protocol.md or docs/errors.md', () => {
  const codes = Object.keys(PROTOCOL_ERRORS)
  assert.ok(codes.length > 20)
  for (const c of codes) assert.match(c, /^FERRY_ERR_[A-Z0-9_]+$/)
  assert.deepEqual(undocumented(codes, docs()), [], 'document these codes in docs/protocol.md (error table)')
})

for (const [pkg, dir, name] of [['@ferry/app-server', 'app-server', 'APP_SERVER_ERRORS'], ['@ferry/front', 'front', 'FRONT_ERRORS']] as const) {
  test(`every ${name} code is in docs/protocol.md or docs/errors.md`, async (t) => {
    const codes = await table(pkg, dir, name)
    if (codes === undefined) {
      t.skip(`${pkg} has no ${name} table`)
      return
    }
    const keys = Object.keys(codes)
    for (const c of keys) assert.match(c, /^FERRY_ERR_[A-Z0-9_]+$/)
    assert.deepEqual(undocumented(keys, docs()), [], `document these ${pkg} codes in docs/errors.md`)
  })
}
