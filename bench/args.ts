/**
 * Command line of the bench runner:
 *   npm run bench [-- [codec|e2e|all] [--quick] [--rounds N] [--duration S] [--connections N]
 *                     [--only name,name] [--out DIR] [--loadgen wrk|autocannon]]
 */
import { resolve } from 'node:path'

export const SUBCOMMANDS = ['all', 'codec', 'e2e'] as const
export type Subcommand = (typeof SUBCOMMANDS)[number]

export interface BenchArgs extends RunArgs {
  command: Subcommand
  connections: number
  /** Configuration names to run (e2e); empty = all. */
  only: string[]
  outDir: string
  loadgen: 'auto' | 'wrk' | 'autocannon'
}

export const USAGE = `usage: npm run bench -- [codec|e2e|all] [options]
       ferry bench [codec|e2e|all] [options]

  codec              codec micro-bench (ns/op, bytes on the wire)
  e2e                end-to-end req/s and latency through every configuration
  all                both (default)

  --quick            short run: 1 round of 3 s per configuration, fewer codec rounds
  --rounds N         interleaved rounds (default 3; codec: timed rounds, default 7)
  --duration S       seconds of load per configuration per round (default 6)
  --connections N    concurrent client connections (default 50)
  --only a,b         run only these e2e configurations (see the list printed by e2e)
  --loadgen NAME     wrk or autocannon (default: wrk when /usr/bin/wrk exists)
  --out DIR          where results go (default bench/results)
  --profile          e2e: run the Node servers with --cpu-prof (profiles in a temp dir)
                     and print each one's top functions by self time
  -h, --help         this text
`

export class ArgsError extends Error {}

export function positiveInt (flag: string, v: string | undefined): number {
  const n = Number(v)
  if (v === undefined || !Number.isInteger(n) || n <= 0) throw new ArgsError(`${flag} needs a positive integer, got ${v ?? 'nothing'}`)
  return n
}

/** The options every bench command has. */
export interface RunArgs {
  quick: boolean
  /** Interleaved rounds; 0 = the command's default. */
  rounds: number
  /** Seconds of load per configuration per round; 0 = the command's default. */
  duration: number
  outDir: string
  /** Run the Node servers with --cpu-prof and summarize where their CPU goes. */
  profile: boolean
  help: boolean
}

/**
 * Walks argv (`--flag value` or `--flag=value`), filling the shared RunArgs options of `out`;
 * `extra` takes every other argument and returns false for one it does not know.
 */
export function parseRunArgs<T extends RunArgs> (argv: readonly string[], out: T, extra: (flag: string, value: () => string | undefined, raw: string) => boolean): T {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined]
    const value = (): string | undefined => inline ?? argv[++i]
    switch (flag) {
      case '--quick': out.quick = true; break
      case '--profile': out.profile = true; break
      case '--rounds': out.rounds = positiveInt(flag, value()); break
      case '--duration': out.duration = positiveInt(flag, value()); break
      case '--out': {
        const v = value()
        if (v === undefined || v === '') throw new ArgsError('--out needs a directory')
        out.outDir = resolve(v)
        break
      }
      case '-h':
      case '--help': out.help = true; break
      default:
        if (!extra(flag, value, a)) throw new ArgsError(`unknown argument ${a}`)
    }
  }
  return out
}

export function parseArgs (argv: readonly string[], root: string): BenchArgs {
  const out: BenchArgs = {
    command: 'all',
    quick: false,
    rounds: 0,
    duration: 0,
    connections: 50,
    only: [],
    outDir: resolve(root, 'bench/results'),
    loadgen: 'auto',
    profile: false,
    help: false
  }
  let commandSeen = false
  return parseRunArgs(argv, out, (flag, value, raw) => {
    switch (flag) {
      case '--connections': out.connections = positiveInt(flag, value()); return true
      case '--only': out.only = (value() ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''); return true
      case '--loadgen': {
        const v = value()
        if (v !== 'wrk' && v !== 'autocannon') throw new ArgsError(`--loadgen is wrk or autocannon, got ${v ?? 'nothing'}`)
        out.loadgen = v
        return true
      }
    }
    if (commandSeen || !(SUBCOMMANDS as readonly string[]).includes(raw)) return false
    out.command = raw as Subcommand
    commandSeen = true
    return true
  })
}
