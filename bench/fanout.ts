/*
 * Fan-out, side by side: 10,000 subscribers of one group, one publisher at a fixed rate; delivery
 * latency from publish to subscriber and the server's CPU per delivery, for the plugin (a topic)
 * against raw ws and bare @fastify/websocket (a broadcast loop over a Set) and Socket.IO 4 (a room).
 */
import type { FanoutMark, FanoutPlan } from './fanout-load.js'
import { LOAD_CORE, RUNS, measureWindow, median, pinned, spread, startServer, stop, type Peer } from './harness.js'
import { BARE, PLUGIN, RAW_WS, SOCKET_IO } from './peers.js'
import { verdict, type Section } from './report.js'
import { wireOf } from './wire.js'

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 10_000)
const PUBLISHES_PER_SECOND = Number(process.env.BENCH_FANOUT_RATE ?? 5)

interface Sample {
  deliveriesPerSecond: number
  cpuMicrosPerDelivery: number
  p50: number
  p99: number
  p999: number
}

async function measure (peer: Peer): Promise<Sample> {
  const { server, port } = await startServer(peer.kind, peer.options)
  const plan: FanoutPlan = { port, wire: wireOf(peer.kind), subscribers: SUBSCRIBERS, concurrency: 100, publishesPerSecond: PUBLISHES_PER_SECOND, sampleEvery: 20 }
  const load = pinned(LOAD_CORE, ['bench/fanout-load.ts', JSON.stringify(plan)])
  try {
    const { start, end, elapsedMs, serverCpuMicros } = await measureWindow<FanoutMark>(load, server)
    const deliveries = end.deliveries - start.deliveries
    if (deliveries <= 0 || end.latency === undefined) throw new Error(`${peer.label}: nothing delivered`)
    return {
      deliveriesPerSecond: deliveries / elapsedMs * 1000,
      cpuMicrosPerDelivery: serverCpuMicros / deliveries,
      ...end.latency
    }
  } finally {
    await stop(load, server)
  }
}

export async function runFanout (): Promise<Section> {
  const peers = [RAW_WS, BARE, SOCKET_IO, PLUGIN]
  const samples = new Map<Peer, Sample[]>(peers.map((peer) => [peer, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const peer of peers) samples.get(peer)!.push(await measure(peer))
  }
  const cpu = (peer: Peer): number => median(samples.get(peer)!.map((s) => s.cpuMicrosPerDelivery))
  const body = [
    '| server | deliveries/s | delivery p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | CPU/delivery vs raw ws |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const peer of peers) {
    const list = samples.get(peer)!
    const cell = (pick: (s: Sample) => number, digits: number): string => spread(list.map(pick), digits)
    body.push(`| ${peer.label} | ${cell((s) => s.deliveriesPerSecond, 0)} | ${cell((s) => s.p50, 2)} | ${cell((s) => s.p99, 2)} | ${cell((s) => s.p999, 2)} | ${cell((s) => s.cpuMicrosPerDelivery, 2)} | ${(cpu(peer) / cpu(RAW_WS)).toFixed(2)}× |`)
  }
  const versusWs = cpu(PLUGIN) / cpu(RAW_WS)
  // Deliveries one core can make per second: the fan-out throughput figure.
  const versusSocketIo = cpu(SOCKET_IO) / cpu(PLUGIN)
  return {
    title: `Fan-out to ${SUBSCRIBERS.toLocaleString('en')} subscribers`,
    method: `${SUBSCRIBERS.toLocaleString('en')} subscribers on raw TCP sockets, one publisher at ${PUBLISHES_PER_SECOND} publishes/s carrying its send time; ` +
      'every subscriber counts deliveries, one in 20 reads the send time back for latency. The plugin publishes through its topic (a `say` into `room:bench`, memory broker, ' +
      'offsets and all); raw ws and bare @fastify/websocket loop over a Set of sockets with `send`, as ws\'s README shows; Socket.IO uses `socket.to(room).emit`.',
    body,
    verdicts: [
      verdict('fan-out server CPU per delivery ≤ raw ws', versusWs, versusWs <= 1),
      verdict('fan-out deliveries per CPU-second ≥ 1.5× Socket.IO', versusSocketIo, versusSocketIo >= 1.5)
    ]
  }
}
