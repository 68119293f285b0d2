/*
 * `npm run bench`: echo throughput and server CPU per message of the example app's /ws against
 * a bare @fastify/websocket echo and a hand-written JSON + compiled-TypeBox echo, in one run.
 * Server and load generator are pinned to different cores; runs are interleaved and each figure
 * is the median of BENCH_RUNS runs with its min–max. Ratios compare servers within this run only.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { availableParallelism, cpus } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoadPlan } from './load.js'
import type { ServerKind } from './servers.js'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1_000)
const MEASURE_MS = Number(process.env.BENCH_MEASURE_MS ?? 3_000)
const PAYLOAD = '{"type":"echo","id":1,"data":{"text":"hello, benchmark"}}'
const SERVERS = ['bare', 'handwritten', 'plugin'] as const satisfies ServerKind[]
const LABELS: Record<typeof SERVERS[number], string> = {
  bare: 'bare @fastify/websocket echo',
  handwritten: 'hand-written JSON + TypeBox echo',
  plugin: 'fastify-realtime (example app /ws)'
}

interface Scenario {
  name: string
  plan: Omit<LoadPlan, 'port' | 'path' | 'payload'>
}

const SCENARIOS: Scenario[] = [
  { name: 'pipelined: 50 connections × 10 in flight', plan: { connections: 50, inflight: 10 } },
  { name: 'fixed rate: 20,000 msg/s over 50 connections', plan: { connections: 50, ratePerSecond: 20_000 } }
]

interface Sample {
  messagesPerSecond: number
  cpuMicrosPerMessage: number
}

const multiCore = availableParallelism() >= 2
const SERVER_CORE = '0'
const LOAD_CORE = multiCore ? '1' : '0'

function pinned (core: string, args: string[]): ChildProcess {
  return spawn('taskset', ['-c', core, process.execPath, '--import', 'tsx', ...args], {
    stdio: ['ignore', 'pipe', 'inherit', 'ipc']
  })
}

async function request<T> (child: ChildProcess, message: string): Promise<T> {
  child.send(message)
  const [answer] = await once(child, 'message') as [T]
  return answer
}

async function measure (kind: ServerKind, scenario: Scenario): Promise<Sample> {
  const server = pinned(SERVER_CORE, ['bench/servers.ts', kind])
  const [portText] = await once(server.stdout!, 'data') as [Buffer]
  const plan: LoadPlan = { ...scenario.plan, port: Number(portText.toString().trim()), path: '/ws', payload: PAYLOAD }
  const load = pinned(LOAD_CORE, ['bench/load.ts', JSON.stringify(plan)])
  try {
    await once(load, 'message')
    await sleep(WARMUP_MS)
    const startCount = await request<number>(load, 'count')
    const startCpu = await request<NodeJS.CpuUsage>(server, 'cpu')
    const startedAt = performance.now()
    await sleep(MEASURE_MS)
    const endCount = await request<number>(load, 'count')
    const endCpu = await request<NodeJS.CpuUsage>(server, 'cpu')
    const elapsedMs = performance.now() - startedAt
    const messages = endCount - startCount
    if (messages <= 0) throw new Error(`${kind}: no replies during ${scenario.name}`)
    const cpuMicros = (endCpu.user - startCpu.user) + (endCpu.system - startCpu.system)
    return { messagesPerSecond: messages / elapsedMs * 1000, cpuMicrosPerMessage: cpuMicros / messages }
  } finally {
    load.disconnect()
    server.disconnect()
    await Promise.all([once(load, 'exit'), once(server, 'exit')])
  }
}

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function spread (values: number[], digits: number): string {
  const format = (value: number): string => value.toFixed(digits)
  return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`
}

console.log(`fastify-realtime echo benchmark — ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.version}`)
console.log(`server on core ${SERVER_CORE}, load generator on core ${LOAD_CORE}; ${RUNS} runs of ${MEASURE_MS} ms after ${WARMUP_MS} ms warm-up; median (min–max)`)
if (!multiCore) console.log('warning: one core only, server and load generator share it')

const verdicts: string[] = []
for (const scenario of SCENARIOS) {
  const samples = new Map<ServerKind, Sample[]>(SERVERS.map((kind) => [kind, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const kind of SERVERS) samples.get(kind)!.push(await measure(kind, scenario))
  }
  const medians = new Map(SERVERS.map((kind) => {
    const list = samples.get(kind)!
    return [kind, { rate: median(list.map((s) => s.messagesPerSecond)), cpu: median(list.map((s) => s.cpuMicrosPerMessage)) }]
  }))
  const handwritten = medians.get('handwritten')!
  const bare = medians.get('bare')!
  console.log(`\n${scenario.name}`)
  console.log('| server | msg/s | server CPU µs/msg | CPU/msg vs hand-written | msg/s vs bare |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  for (const kind of SERVERS) {
    const list = samples.get(kind)!
    const own = medians.get(kind)!
    console.log(`| ${LABELS[kind]} | ${spread(list.map((s) => s.messagesPerSecond), 0)} | ${spread(list.map((s) => s.cpuMicrosPerMessage), 2)} | ` +
      `${(own.cpu / handwritten.cpu).toFixed(2)}× | ${(own.rate / bare.rate).toFixed(2)}× |`)
  }
  if (scenario.plan.ratePerSecond !== undefined) {
    const ratio = medians.get('plugin')!.cpu / handwritten.cpu
    verdicts.push(`target: full pipeline ≤ 1.3× the hand-written echo's server CPU per message at a fixed rate — ${ratio.toFixed(2)}× ${ratio <= 1.3 ? 'met' : 'MISSED'}`)
  } else {
    verdicts.push(`pipelined throughput vs bare @fastify/websocket: ${(medians.get('plugin')!.rate / bare.rate).toFixed(2)}×`)
  }
}
console.log('')
for (const verdict of verdicts) console.log(verdict)
