#!/usr/bin/env node
/**
 * The `ferry` command: `ferry app …`, `ferry front …`, `ferry bench …`.
 * Each subcommand lives in commands/<name>.ts and exports `run(argv): Promise<number | undefined>`
 * and `help: string`. The command-line forms are a contract operators rely on: extend, never rename.
 */
import { readFileSync } from 'node:fs'
import { commands } from './commands/index.js'
import { NODE_FLAGS } from './node-flags.js'

const USAGE = `ferry — a two-tier HTTP bridge for Node.js

Usage:
  ferry <command> [options]

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`).join('\n')}

Run 'ferry <command> --help' for a command's options.

Options:
  -h, --help       show this help
  -v, --version    show the version

The command starts node with ${NODE_FLAGS.join(' ')} (fewer full garbage
collections under load; docs/operations.md). Other node flags:
  node <flags> "$(command -v ferry)" <command> …
`

async function main (argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv
  if (cmd === undefined || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    if (cmd === 'help' && rest[0] !== undefined && commands[rest[0]] !== undefined) {
      process.stdout.write(commands[rest[0]]!.help)
      return 0
    }
    process.stdout.write(USAGE)
    return cmd === undefined ? 1 : 0
  }
  if (cmd === '-v' || cmd === '--version') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
    process.stdout.write(`ferry ${pkg.version}\n`)
    return 0
  }
  const command = commands[cmd]
  if (command === undefined) {
    process.stderr.write(`ferry: unknown command '${cmd}'\n\n${USAGE}`)
    return 2
  }
  if (command.ownHelp !== true && (rest.includes('--help') || rest.includes('-h'))) {
    process.stdout.write(command.help)
    return 0
  }
  const { run } = await command.load()
  const code = await run(rest)
  return code ?? 0
}

main(process.argv.slice(2)).then((code) => {
  // Long-running commands (app, front) resolve only when they are done serving.
  process.exitCode = code
}, (err: unknown) => {
  const e = err as { code?: string, message?: string }
  process.stderr.write(`ferry: ${e?.code ? `${e.code}: ` : ''}${e?.message ?? String(err)}\n`)
  process.exitCode = 2
})
