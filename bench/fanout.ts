/*
 * Fan-out, side by side: many subscribers of one group, one publisher at a fixed rate; delivery
 * latency from publish to subscriber and the server's CPU per delivery, for the plugin (a topic)
 * against raw ws and bare @fastify/websocket (a broadcast loop over a Set) and Socket.IO 4 (a
 * room). Two rooms: a large one with rare publishes, and a busy one whose publishes come faster
 * than any of these servers turns its event loop.
 */
import type { FanoutMark, FanoutPlan } from './fanout-load.js'
import { LOAD_CORE, RUNS, measureWindow, median, pinned, spread, startServer, stop, type Peer } from './harness.js'
import { BARE, PLUGIN, RAW_WS, SOCKET_IO } from './peers.js'
import { verdict, type Section } from './report.js'
import { wireOf } from './wire.js'

interface Room {
  subscribers: number
  publishesPerSecond: number
}

const LARGE_ROOM: Room = { subscribers: Number(process.env.BENCH_SUBSCRIBERS ?? 10_000), publishesPerSecond: Number(process.env.BENCH_FANOUT_RATE ?? 5) }
const BUSY_ROOM: Room = { subscribers: 1_000, publishesPerSecond: 200 }

interface Sample {
  deliveriesPerSecond: number
  cpuMicrosPerDelivery: number
  p50: number
  p99: number
  p999: number
}

async function measure (peer: Peer, room: Room): Promise<Sample> {
  const { server, port } = await startServer(peer.kind, peer.options)
  const plan: FanoutPlan = { port, wire: wireOf(peer.kind), ...room, concurrency: 100, sampleEvery: 20 }
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

const TABLE_HEAD = [
  '| server | deliveries/s | delivery p50 ms | p99 ms | p99.9 ms | server CPU µs/delivery | CPU/delivery vs raw ws |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |'
]

async function measureRoom (room: Room, peers: Peer[]): Promise<{ body: string[], cpu: (peer: Peer) => number, p99: (peer: Peer) => number }> {
  const samples = new Map<Peer, Sample[]>(peers.map((peer) => [peer, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const peer of peers) samples.get(peer)!.push(await measure(peer, room))
  }
  const cpu = (peer: Peer): number => median(samples.get(peer)!.map((s) => s.cpuMicrosPerDelivery))
  const p99 = (peer: Peer): number => median(samples.get(peer)!.map((s) => s.p99))
  const body = [`### ${room.subscribers.toLocaleString('en')} subscribers, ${room.publishesPerSecond} publishes/s`, '', ...TABLE_HEAD]
  for (const peer of peers) {
    const list = samples.get(peer)!
    const cell = (pick: (s: Sample) => number, digits: number): string => spread(list.map(pick), digits)
    body.push(`| ${peer.label} | ${cell((s) => s.deliveriesPerSecond, 0)} | ${cell((s) => s.p50, 2)} | ${cell((s) => s.p99, 2)} | ${cell((s) => s.p999, 2)} | ${cell((s) => s.cpuMicrosPerDelivery, 2)} | ${(cpu(peer) / cpu(RAW_WS)).toFixed(2)}× |`)
  }
  return { body, cpu, p99 }
}

export async function runFanout (): Promise<Section> {
  const large = await measureRoom(LARGE_ROOM, [RAW_WS, BARE, SOCKET_IO, PLUGIN])
  // Socket.IO is left out of the busy room: past its capacity it delivers a few hundred a second.
  const busy = await measureRoom(BUSY_ROOM, [RAW_WS, BARE, PLUGIN])
  const versusWs = large.cpu(PLUGIN) / large.cpu(RAW_WS)
  // Deliveries one core can make per second: the fan-out throughput figure.
  const versusSocketIo = large.cpu(SOCKET_IO) / large.cpu(PLUGIN)
  const busyVersusWs = busy.cpu(PLUGIN) / busy.cpu(RAW_WS)
  const busyP99 = busy.p99(PLUGIN) / busy.p99(RAW_WS)
  return {
    title: 'Fan-out',
    method: 'Subscribers on raw TCP sockets, one publisher at a fixed rate carrying its send time; ' +
      'every subscriber counts deliveries, one in 20 reads the send time back for latency. The plugin publishes through its topic (a `say` into `room:bench`, memory broker, ' +
      'offsets and all); raw ws and bare @fastify/websocket loop over a Set of sockets with `send`, as ws\'s README shows; Socket.IO uses `socket.to(room).emit`. ' +
      'The busy room asks for more deliveries than one core makes: each server delivers what it can, and its latency is the queue it lets build.',
    body: [...large.body, '', ...busy.body],
    verdicts: [
      verdict(`fan-out server CPU per delivery ≤ raw ws (${LARGE_ROOM.subscribers.toLocaleString('en')} subscribers)`, versusWs, versusWs <= 1),
      verdict('fan-out deliveries per CPU-second ≥ 1.5× Socket.IO', versusSocketIo, versusSocketIo >= 1.5),
      verdict(`fan-out server CPU per delivery ≤ 0.5× raw ws (${BUSY_ROOM.subscribers.toLocaleString('en')} subscribers at ${BUSY_ROOM.publishesPerSecond} publishes/s)`, busyVersusWs, busyVersusWs <= 0.5),
      verdict('… with delivery p99 no worse than raw ws', busyP99, busyP99 <= 1)
    ]
  }
}
