#!/bin/sh
':' //; exec node --initial-old-space-size=64 "$0" "$@"
/*
 * The `ferry` command (package.json "bin"; npm links it as node_modules/.bin/ferry). The
 * two lines above are a shell script and JavaScript at once: run as a command, /bin/sh
 * execs node with the V8 flags of src/node-flags.ts (NODE_FLAGS; a test keeps the two
 * equal) on this same file, in the same process (the pid a supervisor signals is node's);
 * node reads a string and a comment. A shebang cannot pass node a flag portably (`env -S`
 * is missing from busybox), and these flags can only be given when the process starts.
 * This file is checked in, not built, so that npm can link it at install time, before
 * `prepare` has built dist/.
 */
try {
  await import('../dist/bin.js')
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/bin.js')) {
    process.stderr.write('ferry is not built yet: run `npm install` (or `npm run build`) in its repository\n')
    process.exit(1)
  }
  throw err
}
