/*
 * `npm run bench` (second part): connection rate and memory per idle connection, for the example
 * app with every protection on against bare @fastify/websocket, in one run. 10,000 connections
 * each (BENCH_CONNECTIONS), server and load generator pinned to different cores, median of
 * BENCH_RUNS runs with min–max, runs interleaved. Both servers get the same clients, each with
 * its own signed token in `Authorization` (the bare server ignores it).
 */
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConnectPlan } from './connect-load.js'
import { BENCH_AUTH_SECRET } from './auth-secret.js'
import { LOAD_CORE, RUNS, ask, median, pinned, spread, startServer } from './harness.js'
import type { ServerKind } from './servers.js'

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10_000)
const CONCURRENCY = 100

interface Sample {
  connectionsPerSecond: number
  rssPerConnection: number
  heapPerConnection: number
}

async function measure (kind: ServerKind): Promise<Sample> {
  const { server, port } = await startServer(kind)
  const plan: ConnectPlan = {
    port,
    connections: CONNECTIONS,
    concurrency: CONCURRENCY,
    authSecret: BENCH_AUTH_SECRET
  }
  try {
    await sleep(500)
    const before = await ask<NodeJS.MemoryUsage>(server, 'memory')
    const load = pinned(LOAD_CORE, ['bench/connect-load.ts', JSON.stringify(plan)])
    try {
      const [result] = await once(load, 'message') as [{ opened: number, seconds: number }]
      if (result.opened !== CONNECTIONS) throw new Error(`${kind}: opened ${result.opened} of ${CONNECTIONS}`)
      await sleep(1_000)
      const after = await ask<NodeJS.MemoryUsage>(server, 'memory')
      return {
        connectionsPerSecond: result.opened / result.seconds,
        rssPerConnection: (after.rss - before.rss) / CONNECTIONS,
        heapPerConnection: (after.heapUsed - before.heapUsed) / CONNECTIONS
      }
    } finally {
      load.disconnect()
      await once(load, 'exit')
    }
  } finally {
    server.disconnect()
    await once(server, 'exit')
  }
}

const KINDS = (process.env.BENCH_KINDS?.split(',') ?? ['bare', 'guarded', 'protected']) as ServerKind[]
const LABELS: Partial<Record<ServerKind, string>> = {
  bare: 'bare @fastify/websocket',
  guarded: 'fastify-realtime: rate limits, caps, Origin, idle/heartbeat, metrics',
  protected: 'fastify-realtime: all of the above and JWT authentication'
}
const samples = new Map<ServerKind, Sample[]>(KINDS.map((kind) => [kind, []]))
for (let run = 0; run < RUNS; run++) {
  for (const kind of KINDS) samples.get(kind)!.push(await measure(kind))
}

console.log(`\nconnections: ${CONNECTIONS.toLocaleString('en')} idle connections per run, ${CONCURRENCY} handshakes in flight; ${RUNS} runs, median (min–max)`)
console.log('| server | connections/s | RSS KB per idle connection | heap KB per idle connection |')
console.log('| --- | ---: | ---: | ---: |')
for (const kind of KINDS) {
  const list = samples.get(kind)!
  console.log(`| ${LABELS[kind] ?? kind} | ${spread(list.map((s) => s.connectionsPerSecond), 0)} | ${spread(list.map((s) => s.rssPerConnection), 1, 1024)} | ${spread(list.map((s) => s.heapPerConnection), 1, 1024)} |`)
}
const bare = samples.get('bare')!
const ratio = (kind: ServerKind, pick: (sample: Sample) => number): number =>
  median(samples.get(kind)!.map(pick)) / median(bare.map(pick))
if (!KINDS.includes('protected') || !KINDS.includes('guarded')) process.exit(0)
const rate = ratio('protected', (s) => s.connectionsPerSecond)
const guardedRate = ratio('guarded', (s) => s.connectionsPerSecond)
const memory = ratio('protected', (s) => s.rssPerConnection)
console.log('')
console.log(`target: connection rate with auth and rate limiting ≥ 0.9× bare — ${rate.toFixed(2)}× ${rate >= 0.9 ? 'met' : 'MISSED'} (without JWT auth: ${guardedRate.toFixed(2)}×)`)
console.log(`target: RSS per idle connection, every protection on, ≤ 1.3× bare — ${memory.toFixed(2)}× ${memory <= 1.3 ? 'met' : 'MISSED'}`)
