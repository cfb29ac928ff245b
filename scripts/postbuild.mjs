// After `tsc -b`: give the ferry bin its start-up lines and make it executable (tsc does not
// keep file modes), so that `npx ferry` and node_modules/.bin/ferry work right after
// `npm install`. tsc writes bin.js with `#!/usr/bin/env node`; a shebang can pass node only
// one argument portably (`env -S` is missing from busybox), so the first lines become a
// /bin/sh prologue that execs node with the flags of packages/cli/src/node-flags.ts.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'

const bin = new URL('../packages/cli/dist/bin.js', import.meta.url)
if (existsSync(bin)) {
  const { binPrologue } = await import(new URL('../packages/cli/dist/node-flags.js', import.meta.url).href)
  const text = readFileSync(bin, 'utf8')
  const body = text.startsWith('#!/usr/bin/env node\n')
    ? text.slice('#!/usr/bin/env node\n'.length)
    : text.startsWith('#!/bin/sh\n')
      ? text.slice(text.indexOf('\n', '#!/bin/sh\n'.length) + 1)
      : text
  const next = binPrologue() + body
  if (next !== text) writeFileSync(bin, next)
  chmodSync(bin, 0o755)
}
