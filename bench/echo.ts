/*
 * `npm run bench`: echo throughput and server CPU per message of the example app's /ws against
 * a bare @fastify/websocket echo and a hand-written JSON + compiled-TypeBox echo, in one run.
 * Server and load generator are pinned to different cores; runs are interleaved and each figure
 * is the median of BENCH_RUNS runs with its min–max. Ratios compare servers within this run only.
 */
import { availableParallelism, cpus } from 'node:os'
import { LOAD_CORE, MEASURE_MS, MULTI_CORE, RUNS, SERVER_CORE, WARMUP_MS, measureEcho, median, spread, type EchoSample } from './harness.js'
import type { LoadPlan } from './load.js'
import type { ServerKind } from './servers.js'

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

console.log(`fastify-realtime echo benchmark — ${cpus()[0]?.model ?? 'unknown CPU'}, ${availableParallelism()} cores, Node ${process.version}`)
console.log(`server on core ${SERVER_CORE}, load generator on core ${LOAD_CORE}; ${RUNS} runs of ${MEASURE_MS} ms after ${WARMUP_MS} ms warm-up; median (min–max)`)
if (!MULTI_CORE) console.log('warning: one core only, server and load generator share it')

const verdicts: string[] = []
for (const scenario of SCENARIOS) {
  const samples = new Map<ServerKind, EchoSample[]>(SERVERS.map((kind) => [kind, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const kind of SERVERS) samples.get(kind)!.push(await measureEcho(kind, scenario.plan))
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
