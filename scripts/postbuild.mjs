// After `tsc -b`: make the ferry bin executable (tsc does not keep file modes), so that
// `npx ferry` and node_modules/.bin/ferry work right after `npm install`.
import { chmodSync, existsSync } from 'node:fs'
const bin = new URL('../packages/cli/dist/bin.js', import.meta.url)
if (existsSync(bin)) chmodSync(bin, 0o755)
