// After `tsc -b`: make the built entry executable (tsc does not keep file modes), so that
// `./packages/cli/dist/bin.js` runs as a script too. The `ferry` command itself is the
// checked-in packages/cli/bin/ferry.js, which npm links and which starts node with
// ferry's flags (packages/cli/src/node-flags.ts) before importing dist/bin.js.
import { chmodSync, existsSync } from 'node:fs'
const bin = new URL('../packages/cli/dist/bin.js', import.meta.url)
if (existsSync(bin)) chmodSync(bin, 0o755)
