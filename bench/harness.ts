/*
 * What the benchmarks share: processes pinned to their own core, IPC questions, echo
 * measurements, a loopback OTLP sink, and medians with their spread.
 */
import { spawn, type ChildProcess, type Serializable } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoadMark, LoadPlan } from './load.js'
import type { ServerKind } from './servers.js'
import { wireOf } from './wire.js'

export const RUNS = Number(process.env.BENCH_RUNS ?? 3)
export const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1_000)
export const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 3_000)
export const MULTI_CORE = availableParallelism() >= 2
export const SERVER_CORE = '0'
export const LOAD_CORE = MULTI_CORE ? '1' : '0'

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

export async function ask<T> (child: ChildProcess, message: Serializable): Promise<T> {
  child.send(message)
  const [answer] = await once(child, 'message') as [T]
  return answer
}

/** Starts `bench/servers.ts <kind>` on the server core and returns it with its port. */
export async function startServer (kind: ServerKind, options?: PinnedOptions): Promise<{ server: ChildProcess, port: number }> {
  const server = pinned(SERVER_CORE, ['bench/servers.ts', kind], options)
  const [portText] = await once(server.stdout!, 'data') as [Buffer]
  return { server, port: Number(portText.toString().trim()) }
}

/** One server in a comparison: what it is called, what runs, and how. */
export interface Peer {
  label: string
  kind: ServerKind
  options?: PinnedOptions
}

export interface EchoSample {
  messagesPerSecond: number
  cpuMicrosPerMessage: number
  /** Reply latency in ms, at a fixed rate only. */
  latency?: { p50: number, p99: number, p999: number }
}

/** Echo load against one server: replies per second, the server's CPU per reply, and latency. */
export async function measureEcho (peer: Peer, plan: Omit<LoadPlan, 'port' | 'wire'>): Promise<EchoSample> {
  const { server, port } = await startServer(peer.kind, peer.options)
  const load = pinned(LOAD_CORE, ['bench/load.ts', JSON.stringify({ ...plan, port, wire: wireOf(peer.kind) })])
  try {
    const { start, end, elapsedMs, serverCpuMicros } = await measureWindow<LoadMark>(load, server)
    const messages = end.replies - start.replies
    if (messages <= 0) throw new Error(`${peer.label}: no replies`)
    return {
      messagesPerSecond: messages / elapsedMs * 1000,
      cpuMicrosPerMessage: serverCpuMicros / messages,
      ...(end.latency === undefined ? {} : { latency: end.latency })
    }
  } finally {
    await stop(load, server)
  }
}

/**
 * Once `load` is ready and warmed up: its marks at the start and end of the measuring window,
 * the window's length, and the server's CPU time over it.
 */
export async function measureWindow<Mark> (load: ChildProcess, server: ChildProcess): Promise<{ start: Mark, end: Mark, elapsedMs: number, serverCpuMicros: number }> {
  await once(load, 'message')
  await sleep(WARMUP_MS)
  const start = await ask<Mark>(load, 'mark')
  const startCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
  const startedAt = performance.now()
  await sleep(MEASURE_MS)
  const end = await ask<Mark>(load, 'mark')
  const endCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
  return { start, end, elapsedMs: performance.now() - startedAt, serverCpuMicros: cpuMicros(startCpu, endCpu) }
}

export function cpuMicros (start: NodeJS.CpuUsage, end: NodeJS.CpuUsage): number {
  return (end.user - start.user) + (end.system - start.system)
}

/** Disconnects children (each exits on disconnect) and waits for them to be gone. */
export async function stop (...children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    if (child.connected) child.disconnect()
    await exited
  }))
}

/** Stands in for Jaeger's OTLP port: reads and discards what it is sent. */
export async function startOtlpSink (): Promise<{ url: string, close: () => void }> {
  const sink = createServer((request, response) => {
    request.resume()
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end())
  })
  sink.listen(0, '127.0.0.1')
  await once(sink, 'listening')
  return { url: `http://127.0.0.1:${(sink.address() as { port: number }).port}`, close: () => sink.close() }
}

/** The example app's OpenTelemetry setup, exporting over OTLP to `endpoint` at a sampling ratio. */
export function tracing (endpoint: string, ratio: string): PinnedOptions {
  return {
    nodeArgs: ['--import', './app/otel.ts'],
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: ratio
    }
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
