/**
 * The bench runner (`npm run bench`): parses the command line, runs the codec micro-bench
 * and/or the end-to-end harness, prints the tables and writes bench/results/latest.*.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ArgsError, type BenchArgs, parseArgs, USAGE } from './args.ts'
import { type CodecResults, codecSummary, codecTable, runCodecBench } from './codec.ts'
import { e2eMarkdown, runE2e } from './e2e.ts'
import { defaultGenerator } from './load.ts'
import { describeMachine, machineInfo } from './machine.ts'
import { stopAll } from './procs.ts'
import { writeLatest } from './results.ts'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function codec (args: BenchArgs): CodecResults {
  const machine = machineInfo()
  const rounds = args.rounds > 0 ? args.rounds : args.quick ? 3 : 7
  const targetRoundMs = args.quick ? 15 : 60
  console.log(`\n# codec micro-bench (${rounds} interleaved rounds of ≈ ${targetRoundMs} ms per figure)\n`)
  const results = runCodecBench({ rounds, targetRoundMs })
  console.log(codecTable(results))
  console.log()
  console.log(codecSummary(results))
  writeLatest(args.outDir, { codec: { machine, results } })
  return results
}

async function e2e (args: BenchArgs, codecResults: CodecResults | null): Promise<void> {
  const machine = machineInfo()
  const rounds = args.rounds > 0 ? args.rounds : args.quick ? 1 : 3
  const seconds = args.duration > 0 ? args.duration : args.quick ? 3 : 6
  const generator = args.loadgen === 'auto' ? defaultGenerator() : args.loadgen
  // framing share needs codec figures: a short codec run when this invocation has none
  const codecFigures = codecResults ?? runCodecBench({ rounds: 3, targetRoundMs: 15 })
  const profileRoot = args.profile ? mkdtempSync(join(tmpdir(), 'ferry-bench-profiles-')) : null
  console.log(`\n# end to end (${generator} -c${args.connections}, ${rounds} interleaved round(s) of ${seconds} s + warm-up per configuration)\n`)
  const results = await runE2e(machine, {
    root,
    rounds,
    seconds,
    warmupSeconds: args.quick ? 1 : 2,
    connections: args.connections,
    only: args.only,
    generator,
    codec: codecFigures,
    profileRoot,
    log: (line) => console.log(line)
  })
  if (profileRoot !== null) console.log(`\nprofiles: ${profileRoot}`)
  console.log()
  console.log(e2eMarkdown(results))
  if (results.configs.some((c) => c.samples.length > 0)) writeLatest(args.outDir, { e2e: { machine, results } })
  else console.log('\nno configuration ran: the stored end-to-end results are left as they were')
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
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping the servers`)
      stopAll().finally(() => process.exit(130))
    })
  }
  console.log(`machine: ${describeMachine(machineInfo())}`)
  try {
    const codecResults = args.command === 'codec' || args.command === 'all' ? codec(args) : null
    if (args.command === 'e2e' || args.command === 'all') await e2e(args, codecResults)
  } finally {
    await stopAll()
  }
  console.log(`\nresults: ${relative(process.cwd(), args.outDir) || '.'}/latest.{json,md,svg}`)
}

await main()
