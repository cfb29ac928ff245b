/**
 * `ferry bench …`: the benchmark harness of the source tree ferry was built from (bench/,
 * what `npm run bench` runs), with the same arguments. The harness is TypeScript run by tsx
 * and drives wrk, nginx and uWSGI where installed; it is part of the source tree, not of the
 * packages, so a ferry without its tree says so (exit 2) instead of guessing.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The source tree: packages/cli/dist/commands/ → four levels up. */
export const TREE = fileURLToPath(new URL('../../../../', import.meta.url))
export const HARNESS = join(TREE, 'bench', 'index.ts')

export async function run (argv: string[]): Promise<number> {
  if (!existsSync(HARNESS)) {
    process.stderr.write(`ferry bench: the benchmark harness is not here (${HARNESS}): it ships with ferry's source tree (git clone, npm install), not with the packages\n`)
    return 2
  }
  // tsx by its resolved URL: the harness runs in the caller's directory (a relative --out is theirs)
  const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), HARNESS, ...argv], { stdio: 'inherit' })
  // Ctrl-C reaches the whole foreground group; a SIGTERM sent to ferry alone is passed on,
  // so the harness stops the servers it started.
  const forward = (sig: NodeJS.Signals): void => { child.kill(sig) }
  process.on('SIGTERM', forward)
  process.on('SIGINT', () => {})
  return await new Promise<number>((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`ferry bench: ${err.message}\n`)
      resolve(2)
    })
    child.on('exit', (code, signal) => {
      process.off('SIGTERM', forward)
      resolve(code ?? (signal === null ? 1 : 128 + (signal === 'SIGINT' ? 2 : 15)))
    })
  })
}
