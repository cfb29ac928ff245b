/**
 * The V8 flags the `ferry` command starts Node with. They can only be given when the process
 * starts (the main thread's heap is configured before any script runs), so the command —
 * packages/cli/bin/ferry.js, checked in and linked by npm — begins with two lines that are a
 * shell script and JavaScript at once: `/bin/sh` runs `exec node <these flags> "$0" "$@"`
 * (the same PID, so supervisors and pid files see one process), and Node reads a string and
 * a comment, then imports dist/bin.js. Those lines are binPrologue(); a test keeps them equal
 * to this list. The demo, the bench and the tests start ferry with the same list.
 *
 * --initial-old-space-size=64: the old generation's allocation limit never drops below
 * 64 MiB. Without it, a busy thread with a small live heap (≈ 9 MB on an app node's main
 * thread) keeps its limit at ≈ 24 MB, which leaves no more room than the young generation's
 * 16 MB; V8 then starts a full mark-compact after almost every scavenge that promotes the
 * objects of requests in flight. With 64 KiB request bodies that was ≈ 15 full GCs a second
 * on the app's main thread and ≈ 4 on the front's, and V8's helper threads spent more CPU on
 * marking than the worker threads on the handlers (bench/README.md, "64 KiB POST echo").
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64']

/** The first two lines of bin/ferry.js: `#!/bin/sh`, then a line both sh and JavaScript accept. */
export function binPrologue (): string {
  return `#!/bin/sh\n':' //; exec node ${NODE_FLAGS.join(' ')} "$0" "$@"\n`
}
