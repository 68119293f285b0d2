/*
 * Echo, side by side: pipelined throughput, ping-pong throughput, and latency and server CPU per
 * message at fixed rates, for the plugin (with and without tracing) against raw ws, bare
 * @fastify/websocket, a hand-written JSON + TypeBox echo and Socket.IO 4.
 */
import { RUNS, measureEcho, median, spread, startOtlpSink, type EchoSample, type Peer } from './harness.js'
import type { LoadPlan } from './load.js'
import { BARE, HANDWRITTEN, PLUGIN, RAW_WS, SOCKET_IO, tracedPlugin } from './peers.js'
import { verdict, type Section, type Verdict } from './report.js'

interface Scenario {
  name: string
  plan: Omit<LoadPlan, 'port' | 'wire'>
}

const RATES = (process.env.BENCH_ECHO_RATES ?? '5000,20000').split(',').map(Number)
const SCENARIOS: Scenario[] = [
  { name: 'pipelined: 50 connections × 10 in flight', plan: { connections: 50, inflight: 10 } },
  // Interactive request/reply at two sizes: at 500 every server is CPU-bound, at 200 round trips
  // and each reply's own write weigh more.
  { name: 'ping-pong: 200 connections × 1 in flight', plan: { connections: 200, inflight: 1 } },
  { name: 'ping-pong: 500 connections × 1 in flight', plan: { connections: 500, inflight: 1 } },
  ...RATES.map((rate) => ({ name: `fixed rate: ${rate.toLocaleString('en')} msg/s over 50 connections`, plan: { connections: 50, ratePerSecond: rate } }))
]

export async function runEcho (): Promise<Section> {
  const sink = await startOtlpSink()
  const traced = tracedPlugin(sink.url)
  const peers: Peer[] = [RAW_WS, BARE, HANDWRITTEN, SOCKET_IO, PLUGIN, traced]
  const body: string[] = []
  const verdicts: Verdict[] = []
  try {
    for (const scenario of SCENARIOS) {
      const samples = new Map<Peer, EchoSample[]>(peers.map((peer) => [peer, []]))
      for (let run = 0; run < RUNS; run++) {
        for (const peer of peers) samples.get(peer)!.push(await measureEcho(peer, scenario.plan))
      }
      const rate = (peer: Peer): number => median(samples.get(peer)!.map((s) => s.messagesPerSecond))
      const cpu = (peer: Peer): number => median(samples.get(peer)!.map((s) => s.cpuMicrosPerMessage))
      const fixedRate = scenario.plan.ratePerSecond !== undefined
      body.push(`### ${scenario.name}`, '')
      if (fixedRate) {
        body.push('| server | latency p50 ms | p99 ms | p99.9 ms | server CPU µs/msg | CPU/msg vs bare |', '| --- | ---: | ---: | ---: | ---: | ---: |')
      } else {
        body.push('| server | msg/s | server CPU µs/msg | msg/s vs bare | msg/s vs Socket.IO |', '| --- | ---: | ---: | ---: | ---: |')
      }
      for (const peer of peers) {
        const list = samples.get(peer)!
        const cpuCell = spread(list.map((s) => s.cpuMicrosPerMessage), 2)
        if (fixedRate) {
          const latency = (pick: (l: NonNullable<EchoSample['latency']>) => number): string =>
            spread(list.map((s) => s.latency === undefined ? NaN : pick(s.latency)), 2)
          body.push(`| ${peer.label} | ${latency((l) => l.p50)} | ${latency((l) => l.p99)} | ${latency((l) => l.p999)} | ${cpuCell} | ${(cpu(peer) / cpu(BARE)).toFixed(2)}× |`)
        } else {
          body.push(`| ${peer.label} | ${spread(list.map((s) => s.messagesPerSecond), 0)} | ${cpuCell} | ${(rate(peer) / rate(BARE)).toFixed(2)}× | ${(rate(peer) / rate(SOCKET_IO)).toFixed(2)}× |`)
        }
      }
      body.push('')
      if (scenario.plan.inflight === 10) {
        verdicts.push(verdict('pipelined echo throughput ≥ 2.0× bare @fastify/websocket', rate(PLUGIN) / rate(BARE), rate(PLUGIN) / rate(BARE) >= 2.0))
        verdicts.push(verdict('pipelined echo throughput ≥ 1.5× Socket.IO', rate(PLUGIN) / rate(SOCKET_IO), rate(PLUGIN) / rate(SOCKET_IO) >= 1.5))
      } else if (scenario.plan.inflight === 1) {
        const connections = scenario.plan.connections
        verdicts.push(verdict(`ping-pong throughput at ${connections} connections ≥ 0.9× bare @fastify/websocket`, rate(PLUGIN) / rate(BARE), rate(PLUGIN) / rate(BARE) >= 0.9))
        verdicts.push(verdict(`ping-pong throughput at ${connections} connections ≥ 1.5× Socket.IO`, rate(PLUGIN) / rate(SOCKET_IO), rate(PLUGIN) / rate(SOCKET_IO) >= 1.5))
      } else if (scenario.plan.ratePerSecond === Math.max(...RATES)) {
        const versusHandwritten = cpu(PLUGIN) / cpu(HANDWRITTEN)
        verdicts.push(verdict(`server CPU per message at ${scenario.plan.ratePerSecond.toLocaleString('en')} msg/s ≤ 1.3× the hand-written echo`, versusHandwritten, versusHandwritten <= 1.3))
      }
    }
  } finally {
    sink.close()
  }
  return {
    title: 'Echo',
    method: 'Each server echoes `{"type":"echo",…}` (Socket.IO: an `echo` event). The load generator is raw TCP with pre-masked frames, ' +
      'so it costs little on its core; pipelined and ping-pong runs count replies, fixed-rate runs time each reply against its send. ' +
      'Server CPU is user + system time of the server process over the window.',
    body,
    verdicts
  }
}
