/*
 * Connections, side by side: how fast each server accepts 10,000 connections (BENCH_CONNECTIONS)
 * and what each idle one costs in memory. Every client carries its own signed token in
 * `Authorization`, which only the JWT-protected plugin reads.
 */
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { BENCH_AUTH_SECRET } from './auth-secret.js'
import type { ConnectPlan } from './connect-load.js'
import { LOAD_CORE, RUNS, ask, median, pinned, spread, startServer, stop, type Peer } from './harness.js'
import { BARE, PLUGIN, RAW_WS, SOCKET_IO } from './peers.js'
import { verdict, type Section } from './report.js'
import { wireOf } from './wire.js'

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10_000)
const CONCURRENCY = 100
const PROTECTED: Peer = { label: 'fastify-realtime, full pipeline + metrics + JWT authentication', kind: 'protected' }

interface Sample {
  connectionsPerSecond: number
  rssPerConnection: number
  heapPerConnection: number
}

async function measure (peer: Peer): Promise<Sample> {
  const { server, port } = await startServer(peer.kind, peer.options)
  const plan: ConnectPlan = { port, wire: wireOf(peer.kind), connections: CONNECTIONS, concurrency: CONCURRENCY, authSecret: BENCH_AUTH_SECRET }
  try {
    await sleep(500)
    const before = await ask<NodeJS.MemoryUsage>(server, 'memory')
    const load = pinned(LOAD_CORE, ['bench/connect-load.ts', JSON.stringify(plan)])
    try {
      const [result] = await once(load, 'message') as [{ opened: number, seconds: number }]
      if (result.opened !== CONNECTIONS) throw new Error(`${peer.label}: opened ${result.opened} of ${CONNECTIONS}`)
      await sleep(1_000)
      const after = await ask<NodeJS.MemoryUsage>(server, 'memory')
      return {
        connectionsPerSecond: result.opened / result.seconds,
        rssPerConnection: (after.rss - before.rss) / CONNECTIONS,
        heapPerConnection: (after.heapUsed - before.heapUsed) / CONNECTIONS
      }
    } finally {
      await stop(load)
    }
  } finally {
    await stop(server)
  }
}

export async function runConnections (): Promise<Section> {
  const peers = [RAW_WS, BARE, SOCKET_IO, PLUGIN, PROTECTED]
  const samples = new Map<Peer, Sample[]>(peers.map((peer) => [peer, []]))
  for (let run = 0; run < RUNS; run++) {
    for (const peer of peers) samples.get(peer)!.push(await measure(peer))
  }
  const ratio = (peer: Peer, versus: Peer, pick: (sample: Sample) => number): number =>
    median(samples.get(peer)!.map(pick)) / median(samples.get(versus)!.map(pick))
  const body = [
    '| server | connections/s | RSS KB per idle connection | heap KB per idle connection | RSS vs bare |',
    '| --- | ---: | ---: | ---: | ---: |'
  ]
  for (const peer of peers) {
    const list = samples.get(peer)!
    body.push(`| ${peer.label} | ${spread(list.map((s) => s.connectionsPerSecond), 0)} | ${spread(list.map((s) => s.rssPerConnection), 1, 1024)} | ` +
      `${spread(list.map((s) => s.heapPerConnection), 1, 1024)} | ${ratio(peer, BARE, (s) => s.rssPerConnection).toFixed(2)}× |`)
  }
  const memory = ratio(PLUGIN, BARE, (s) => s.rssPerConnection)
  const versusSocketIo = ratio(PLUGIN, SOCKET_IO, (s) => s.connectionsPerSecond)
  const withJwt = ratio(PROTECTED, BARE, (s) => s.connectionsPerSecond)
  const withoutAuth = ratio(PLUGIN, BARE, (s) => s.connectionsPerSecond)
  return {
    title: `${CONNECTIONS.toLocaleString('en')} connections`,
    method: `${CONNECTIONS.toLocaleString('en')} WebSocket handshakes, ${CONCURRENCY} in flight, from raw TCP clients (Socket.IO's also join its main namespace); ` +
      'then the server collects garbage twice and the growth of its RSS and heap is divided by the connections held.',
    body,
    verdicts: [
      verdict('RSS per idle connection, every protection on, ≤ 1.0× bare @fastify/websocket', memory, memory <= 1.0),
      verdict('connections per second, no authentication, ≥ 1.0× bare @fastify/websocket', withoutAuth, withoutAuth >= 1.0),
      verdict('connections per second with JWT, upgrade rate limit and metrics ≥ 0.9× bare @fastify/websocket', withJwt, withJwt >= 0.9),
      verdict('connections per second ≥ 1.5× Socket.IO', versusSocketIo, versusSocketIo >= 1.5)
    ]
  }
}
