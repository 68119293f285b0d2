/*
 * What the benchmarks share: processes pinned to their own core, IPC questions, echo
 * measurements, and medians with their spread.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoadPlan } from './load.js'

export const RUNS = Number(process.env.BENCH_RUNS ?? 3)
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1_000)
export const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 3_000)
export const MULTI_CORE = availableParallelism() >= 2
export const SERVER_CORE = '0'
export const LOAD_CORE = MULTI_CORE ? '1' : '0'
export const ECHO_PAYLOAD = '{"type":"echo","id":1,"data":{"text":"hello, benchmark"}}'

export interface PinnedOptions {
  /** Node flags before the script, such as `--import ./app/otel.ts`. */
  nodeArgs?: string[]
  env?: NodeJS.ProcessEnv
}

/** `node --import tsx <args>` on one core, with stdout piped and an IPC channel. */
export function pinned (core: string, args: string[], options: PinnedOptions = {}): ChildProcess {
  // Many sockets need as many descriptors on each side.
  return spawn('sh', ['-c', `ulimit -n 65536 2>/dev/null; exec taskset -c ${core} "$0" --expose-gc --import tsx "$@"`, process.execPath, ...(options.nodeArgs ?? []), ...args], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, ...options.env }
  })
}

export async function ask<T> (child: ChildProcess, message: string): Promise<T> {
  child.send(message)
  const [answer] = await once(child, 'message') as [T]
  return answer
}

/** Starts `bench/servers.ts <kind>` on the server core and returns it with its port. */
export async function startServer (kind: string, options?: PinnedOptions): Promise<{ server: ChildProcess, port: number }> {
  const server = pinned(SERVER_CORE, ['bench/servers.ts', kind], options)
  const [portText] = await once(server.stdout!, 'data') as [Buffer]
  return { server, port: Number(portText.toString().trim()) }
}

export interface EchoSample {
  messagesPerSecond: number
  cpuMicrosPerMessage: number
}

/** Echo load against one server: replies per second and the server's CPU per reply. */
export async function measureEcho (kind: string, plan: Omit<LoadPlan, 'port' | 'path' | 'payload'>, options?: PinnedOptions): Promise<EchoSample> {
  const { server, port } = await startServer(kind, options)
  const load = pinned(LOAD_CORE, ['bench/load.ts', JSON.stringify({ ...plan, port, path: '/ws', payload: ECHO_PAYLOAD })])
  try {
    await once(load, 'message')
    await sleep(WARMUP_MS)
    const startCount = await ask<number>(load, 'count')
    const startCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
    const startedAt = performance.now()
    await sleep(MEASURE_MS)
    const endCount = await ask<number>(load, 'count')
    const endCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
    const elapsedMs = performance.now() - startedAt
    const messages = endCount - startCount
    if (messages <= 0) throw new Error(`${kind}: no replies`)
    const cpuMicros = (endCpu.user - startCpu.user) + (endCpu.system - startCpu.system)
    return { messagesPerSecond: messages / elapsedMs * 1000, cpuMicrosPerMessage: cpuMicros / messages }
  } finally {
    load.disconnect()
    server.disconnect()
    await Promise.all([once(load, 'exit'), once(server, 'exit')])
  }
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** `median (min–max)`, each divided by `scale`. */
export function spread (values: number[], digits: number, scale = 1): string {
  const format = (value: number): string => (value / scale).toFixed(digits)
  return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`
}
