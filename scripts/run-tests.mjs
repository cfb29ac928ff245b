// Runs every test/**/*.test.ts with Node's own test runner (TypeScript through tsx).
// Node 20's --test takes no globs, so the files are listed here.
//   node scripts/run-tests.mjs                 all tests
//   node scripts/run-tests.mjs test/protocol   only files under a folder (or given files)
import { spawn } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
function walk (dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures') continue
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (name.endsWith('.test.ts')) out.push(relative(root, p))
  }
  return out
}
const args = process.argv.slice(2)
const targets = args.length > 0 ? args : ['test']
const files = targets.flatMap((t) => (t.endsWith('.test.ts') ? [t] : walk(join(root, t), []))).sort()
if (files.length === 0) {
  console.error('no test files found in', targets.join(' '))
  process.exit(1)
}
const concurrency = process.env.FERRY_TEST_CONCURRENCY ?? '2'
const child = spawn(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files], {
  cwd: root,
  stdio: 'inherit'
})
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
