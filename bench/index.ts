/**
 * The bench runner (`npm run bench`): parses the command line, runs the codec micro-bench
 * and/or the end-to-end harness, prints the tables and writes bench/results/latest.*.
 */
import { dirname, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ArgsError, type BenchArgs, parseArgs, USAGE } from './args.ts'
import { codecSummary, codecTable, runCodecBench } from './codec.ts'
import { describeMachine, machineInfo } from './machine.ts'
import { writeLatest } from './results.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

async function codec (args: BenchArgs): Promise<void> {
  const machine = machineInfo()
  const rounds = args.rounds > 0 ? args.rounds : args.quick ? 3 : 7
  const targetRoundMs = args.quick ? 15 : 60
  console.log(`\n# codec micro-bench (${rounds} rounds of ≈ ${targetRoundMs} ms per figure)\n`)
  const results = await runCodecBench({ rounds, targetRoundMs })
  console.log(codecTable(results))
  console.log()
  console.log(codecSummary(results))
  writeLatest(args.outDir, { codec: { machine, results } })
}

async function main (): Promise<void> {
  let args: BenchArgs
  try {
    args = parseArgs(process.argv.slice(2), root)
  } catch (err) {
    if (!(err instanceof ArgsError)) throw err
    console.error(`${err.message}\n\n${USAGE}`)
    process.exitCode = 2
    return
  }
  if (args.help) {
    console.log(USAGE)
    return
  }
  console.log(`machine: ${describeMachine(machineInfo())}`)
  if (args.command === 'codec' || args.command === 'all') await codec(args)
  console.log(`\nresults: ${relative(process.cwd(), args.outDir) || '.'}/latest.{json,md,svg}`)
}

await main()
