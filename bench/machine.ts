/**
 * The machine a run was measured on: cores, CPU model, memory, Node version. Absolute
 * figures only mean something next to these; ratios travel better.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os'

export interface MachineInfo {
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  platform: string
  loadAverage: number[]
  date: string
}

export function machineInfo (): MachineInfo {
  const list = cpus()
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    loadAverage: loadavg().map((v) => Math.round(v * 100) / 100),
    date: new Date().toISOString()
  }
}

export function describeMachine (m: MachineInfo): string {
  return `${m.cpuModel} · ${m.cores} cores · ${m.memoryGiB} GiB · Node ${m.node} · ${m.platform} · load ${m.loadAverage.join(' ')}`
}
