/*
 * Delivery through the broker. Latency from a `say`
 * sent on node A to its event on a subscriber of node B, through Redis, against the same
 * delivery on one node with the in-memory broker and on one node through Redis; and
 * acknowledged publishes per second, pipelined. Nodes share the server core; clients run here
 * on the load core. Each figure is the median of BENCH_RUNS runs.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { WebSocket } from 'ws'
import { startRedis } from '../test/helpers/redis.js'
import { LOAD_CORE, RUNS, median, spread, startServer, stop } from './harness.js'
import type { Section } from './report.js'

const LATENCY_RATE = 500
const LATENCY_MS = Number(process.env.BENCH_MEASURE_MS ?? 3_000)
const THROUGHPUT_CONNECTIONS = 20
const THROUGHPUT_INFLIGHT = 10

async function connect (port: number): Promise<WebSocket> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, ['realtime.v1'])
  await once(socket, 'message')
  return socket
}

interface Sample {
  p50: number
  p99: number
  publishesPerSecond: number
}

async function measure (redisUrl: string | undefined, twoNodes: boolean): Promise<Sample> {
  const env = redisUrl === undefined ? {} : { REDIS_URL: redisUrl }
  const a = await startServer('chat', { env })
  const b = twoNodes ? await startServer('chat', { env }) : a
  try {
    const room = `bench-${Math.random().toString(36).slice(2)}`
    const subscriber = await connect(b.port)
    subscriber.send(JSON.stringify({ type: '$subscribe', id: 's', data: { topic: `room:${room}` } }))
    await once(subscriber, 'message')
    const publisher = await connect(a.port)
    const sentAt = new Map<string, number>()
    const latencies: number[] = []
    subscriber.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      const started = sentAt.get(frame.data?.text)
      if (started !== undefined) latencies.push(performance.now() - started)
    })
    let n = 0
    const timer = setInterval(() => {
      const text = String(n++)
      sentAt.set(text, performance.now())
      publisher.send(JSON.stringify({ type: 'say', data: { room, text } }))
    }, 1_000 / LATENCY_RATE)
    await sleep(500)
    latencies.length = 0
    await sleep(LATENCY_MS)
    clearInterval(timer)
    await sleep(200)
    latencies.sort((x, y) => x - y)
    const p50 = latencies[Math.floor(latencies.length * 0.5)] ?? NaN
    const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? NaN

    // Throughput: acknowledged publishes, pipelined over several connections, nobody listening.
    let acknowledged = 0
    const publishers = await Promise.all(Array.from({ length: THROUGHPUT_CONNECTIONS }, async () => await connect(a.port)))
    const say = JSON.stringify({ type: 'say', id: 1, data: { room: `${room}-load`, text: 'throughput' } })
    let running = true
    for (const socket of publishers) {
      socket.on('message', () => {
        acknowledged++
        if (running) socket.send(say)
      })
      for (let i = 0; i < THROUGHPUT_INFLIGHT; i++) socket.send(say)
    }
    await sleep(500)
    const startCount = acknowledged
    const startedAt = performance.now()
    await sleep(LATENCY_MS)
    const publishesPerSecond = (acknowledged - startCount) / (performance.now() - startedAt) * 1000
    running = false
    for (const socket of [subscriber, publisher, ...publishers]) socket.terminate()
    return { p50, p99, publishesPerSecond }
  } finally {
    await stop(...(twoNodes ? [a.server, b.server] : [a.server]))
  }
}

export async function runBroker (): Promise<Section> {
  // The clients run in this process: keep it on the load core while they do.
  spawn('taskset', ['-cp', LOAD_CORE, String(process.pid)], { stdio: 'ignore' })
  // The tests' own redis-server helper; what it would stop after a test, this run stops at the end.
  const cleanups: Array<() => Promise<void>> = []
  const redis = await startRedis({ after: (cleanup: () => Promise<void>) => { cleanups.push(cleanup) } })
  const variants = [
    { label: 'one node, in-memory broker', redis: false, twoNodes: false },
    { label: 'one node, Redis broker', redis: true, twoNodes: false },
    { label: 'node A → node B through Redis', redis: true, twoNodes: true }
  ]
  const samples = variants.map((): Sample[] => [])
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const [index, variant] of variants.entries()) {
        samples[index]!.push(await measure(variant.redis ? redis.url : undefined, variant.twoNodes))
      }
    }
  } finally {
    for (const cleanup of cleanups) await cleanup()
  }
  const body = ['| path | delivery p50 ms | delivery p99 ms | acknowledged publishes/s | publishes/s vs in-memory |', '| --- | ---: | ---: | ---: | ---: |']
  const memoryRate = median(samples[0]!.map((s) => s.publishesPerSecond))
  for (const [index, variant] of variants.entries()) {
    const list = samples[index]!
    body.push(`| ${variant.label} | ${spread(list.map((s) => s.p50), 2)} | ${spread(list.map((s) => s.p99), 2)} | ${spread(list.map((s) => s.publishesPerSecond), 0)} | ${(median(list.map((s) => s.publishesPerSecond)) / memoryRate).toFixed(2)}× |`)
  }
  return {
    title: 'Broker delivery',
    method: `${LATENCY_RATE} \`say\`/s from one client to a subscriber (a \`ws\` client each), then acknowledged publishes pipelined over ${THROUGHPUT_CONNECTIONS} connections × ${THROUGHPUT_INFLIGHT} in flight; ` +
      'nodes share the server core, Redis is a redis-server of this run\'s own.',
    body,
    verdicts: []
  }
}
