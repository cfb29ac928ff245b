/**
 * Command line of the WebSocket bench:
 *   node --import tsx bench/ws.ts [--quick] [--rounds N] [--duration S] [--clients N] [--size B]
 *                                 [--out DIR] [--profile]
 */
import { resolve } from 'node:path'
import { parseRunArgs, positiveInt, type RunArgs } from './args.ts'

export interface WsArgs extends RunArgs {
  /** Interleaved rounds; 0 = the default (5, --quick 2). */
  rounds: number
  /** Seconds measured per configuration per round; 0 = the default (5, --quick 2). */
  duration: number
  clients: number
  /** Bytes per message. */
  size: number
}

export const WS_USAGE = `usage: node --import tsx bench/ws.ts [options]    (npm run bench:ws -- [options])

Echo of one binary message per client in a closed loop, through a single-process ws server
(the ceiling) and through ferry front → ferry app, interleaved; writes ws-latest.{json,md}.

  --quick            2 rounds of 2 s (default 5 rounds of 5 s), 1 s warm-up (default 2 s)
  --rounds N         interleaved rounds
  --duration S       seconds measured per configuration per round
  --clients N        WebSocket clients (default 100)
  --size B           bytes per message (default 64)
  --out DIR          where ws-latest.{json,md} go (default bench/results)
  --profile          one round per configuration with --cpu-prof on the servers: prints each
                     process's and worker thread's top functions by self time, keeps the
                     .cpuprofile files in a temp dir, writes no results (--duration, default 5)
  -h, --help         this text
`

/** The e2e bench's argument error: bench/ws.ts prints its message with the usage. */
export { ArgsError as WsArgsError } from './args.ts'

export function parseWsArgs (argv: readonly string[], root: string): WsArgs {
  const out: WsArgs = {
    quick: false,
    rounds: 0,
    duration: 0,
    clients: 100,
    size: 64,
    outDir: resolve(root, 'bench/results'),
    profile: false,
    help: false
  }
  return parseRunArgs(argv, out, (flag, value) => {
    switch (flag) {
      case '--clients': out.clients = positiveInt(flag, value()); return true
      case '--size': out.size = positiveInt(flag, value()); return true
      default: return false
    }
  })
}
