/**
 * Fresh temp dirs for tests (unix sockets, generated configs), removed when the test or
 * file ends. Paths stay short: a unix socket path must fit in 107 bytes.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface AfterHook {
  after: (fn: () => void | Promise<void>) => void
}

/** A new empty directory under the OS temp dir; removed (recursively) by `t.after`. */
export function tempDir (t: AfterHook, prefix = 'ferry-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A new empty directory the caller removes itself (with `removeDir`). */
export function makeTempDir (prefix = 'ferry-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function removeDir (dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}
