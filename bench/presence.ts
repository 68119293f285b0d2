/*
 * Presence: what a room's presence costs its members and its node. Frames each member receives
 * while a thousand join one room within a second, with the plugin's coalescing window and with
 * it effectively off; `$presence` latency on a room of 10,000 members, with the memory and the
 * Redis broker; and connections per second when each subscribes to a room with presence, against
 * the same rooms without it. Every server is the example app (bench/servers.ts `presence`).
 */
import { once } from 'node:events'
import type { ChildProcess } from 'node:child_process'
import { startRedis } from '../test/helpers/redis.js'
import { DEFAULTS } from '../plugin/index.js'
import { MAX_PRESENCE_LIMIT } from '../plugin/protocol/frames.js'
import { MAX_WINDOW_FACTOR } from '../plugin/presence/hub.js'
import { LOAD_CORE, RUNS, ask, cpuMicros, median, pinned, spread, startServer, stop } from './harness.js'
import type { JoinPlan, JoinResult, PresencePlan, ReadPlan, ReadResult, ReadSample, SubscribePlan, SubscribeResult } from './presence-load.js'
import { verdict, type Section } from './report.js'
import type { PopulateMessage } from './servers.js'

const JOINING = Number(process.env.BENCH_PRESENCE_MEMBERS ?? 1_000)
const JOIN_OVER_MS = 1_000
const FRAMES_TARGET = 20
const WINDOWS = [DEFAULTS.presenceWindowMs, 1]
/** Quiet for longer than the widest window a storm can reach: the last diff is out by then. */
const QUIET_MS = (MAX_WINDOW_FACTOR + 2) * DEFAULTS.presenceWindowMs
const LARGE_ROOM = Number(process.env.BENCH_PRESENCE_ROOM ?? 10_000)
const READS = 200
const READ_WARMUP = 10
const READ_KINDS: Array<{ label: string, options: ReadPlan['reads'][number] }> = [
  { label: `no limit (lists ${DEFAULTS.presenceLimit})`, options: {} },
  { label: 'count: true', options: { count: true } }
]
const SUBSCRIBERS = Number(process.env.BENCH_PRESENCE_CONNECTIONS ?? 5_000)
const CONCURRENCY = 100
/** Members per room while connecting: rooms fill side by side, so diffs flow throughout. */
const ROOM_SIZE = 100
const SUBSCRIBE_VARIANTS = [
  { label: 'rooms without presence (`/plain`)', path: '/plain', presence: false },
  { label: 'rooms with presence, a member only (no `presence: true`)', path: '/ws', presence: false },
  { label: 'rooms with presence, a member and watcher (`presence: true`)', path: '/ws', presence: true }
]

/** Starts the load generator on `plan` and waits for its one result; fails if it dies first. */
function runLoad<T> (plan: PresencePlan): { load: ChildProcess, result: Promise<T> } {
  const load = pinned(LOAD_CORE, ['bench/presence-load.ts', JSON.stringify(plan)])
  const controller = new AbortController()
  const { signal } = controller
  const result = Promise.race([
    once(load, 'message', { signal }).then(([answer]) => answer as T),
    once(load, 'exit', { signal }).then(([code]) => { throw new Error(`presence load generator (${plan.job}) exited with ${String(code)}`) })
  ]).finally(() => controller.abort())
  return { load, result }
}

interface JoinSample {
  perMember: number
  most: number
  settledSeconds: number
}

async function measureJoin (windowMs: number): Promise<JoinSample> {
  const { server, port } = await startServer('presence', { env: { WS_PRESENCE_WINDOW_MS: String(windowMs) } })
  const plan: JoinPlan = { job: 'join', port, topic: 'room:bench', members: JOINING, overMs: JOIN_OVER_MS, quietMs: QUIET_MS }
  const { load, result } = runLoad<JoinResult>(plan)
  try {
    const { frames, settledMs, view } = await result
    if (view !== JOINING) throw new Error(`window ${windowMs} ms: member 0 knows ${view} of ${JOINING} members`)
    return { perMember: frames.reduce((sum, n) => sum + n, 0) / frames.length, most: Math.max(...frames), settledSeconds: settledMs / 1000 }
  } finally {
    await stop(load, server)
  }
}

async function measureRead (redisUrl: string | undefined): Promise<ReadResult> {
  const { server, port } = await startServer('presence', { env: redisUrl === undefined ? {} : { REDIS_URL: redisUrl } })
  try {
    // A room of its own each run: one Redis serves every run, and a stopped node's entries stay until their lease ends.
    const topic = `room:large-${Math.random().toString(36).slice(2, 10)}`
    await ask(server, { populate: topic, members: LARGE_ROOM } satisfies PopulateMessage)
    const plan: ReadPlan = { job: 'read', port, topic, warmup: READ_WARMUP, requests: READS, reads: READ_KINDS.map((kind) => kind.options) }
    const { load, result } = runLoad<ReadResult>(plan)
    try {
      const sample = await result
      // The watcher is a member too.
      const counted = [...sample.unwatched.map((s) => s.connections), ...sample.watched.map((s) => s.connections - 1)]
      if (counted.some((n) => n !== LARGE_ROOM)) throw new Error(`$presence counted ${counted.join(', ')} members besides the watcher, not ${LARGE_ROOM}`)
      return sample
    } finally {
      await stop(load)
    }
  } finally {
    await stop(server)
  }
}

interface SubscribeSample {
  connectionsPerSecond: number
  cpuMicrosPerConnection: number
}

async function measureSubscribe ({ path, presence }: typeof SUBSCRIBE_VARIANTS[number]): Promise<SubscribeSample> {
  const { server, port } = await startServer('presence')
  const plan: SubscribePlan = { job: 'subscribe', port, path, connections: SUBSCRIBERS, concurrency: CONCURRENCY, rooms: Math.ceil(SUBSCRIBERS / ROOM_SIZE), presence }
  const startCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
  const { load, result } = runLoad<SubscribeResult>(plan)
  try {
    const { opened, seconds } = await result
    const endCpu = await ask<NodeJS.CpuUsage>(server, 'cpu')
    if (opened !== SUBSCRIBERS) throw new Error(`${path}: opened ${opened} of ${SUBSCRIBERS}`)
    return { connectionsPerSecond: opened / seconds, cpuMicrosPerConnection: cpuMicros(startCpu, endCpu) / opened }
  } finally {
    await stop(load, server)
  }
}

async function joinTable (): Promise<{ body: string[], perMember: number }> {
  const samples = WINDOWS.map((): JoinSample[] => [])
  for (let run = 0; run < RUNS; run++) {
    for (const [index, windowMs] of WINDOWS.entries()) samples[index]!.push(await measureJoin(windowMs))
  }
  const perMember = (index: number): number => median(samples[index]!.map((s) => s.perMember))
  const off = WINDOWS.indexOf(1)
  const body = [
    `### ${JOINING.toLocaleString('en')} members join one room within ${JOIN_OVER_MS / 1000} s`, '',
    '| presenceWindowMs | frames per member | most frames to one member | room settled after s | frames vs 1 ms window |',
    '| --- | ---: | ---: | ---: | ---: |'
  ]
  for (const [index, windowMs] of WINDOWS.entries()) {
    const list = samples[index]!
    const label = windowMs === DEFAULTS.presenceWindowMs ? `${windowMs} (default)` : `${windowMs} (coalescing effectively off)`
    body.push(`| ${label} | ${spread(list.map((s) => s.perMember), 1)} | ${spread(list.map((s) => s.most), 0)} | ${spread(list.map((s) => s.settledSeconds), 2)} | ${(perMember(index) / perMember(off)).toFixed(2)}× |`)
  }
  return { body, perMember: perMember(WINDOWS.indexOf(DEFAULTS.presenceWindowMs)) }
}

async function readTable (): Promise<string[]> {
  // The tests' own redis-server helper; what it would stop after a test, this part stops at the end.
  const cleanups: Array<() => Promise<void>> = []
  const redis = await startRedis({ after: (cleanup: () => Promise<void>) => { cleanups.push(cleanup) } })
  const brokers = [{ label: 'memory', url: undefined }, { label: 'Redis', url: redis.url }]
  const samples = brokers.map((): ReadResult[] => [])
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const [index, broker] of brokers.entries()) samples[index]!.push(await measureRead(broker.url))
    }
  } finally {
    for (const cleanup of cleanups) await cleanup()
  }
  const body = [
    `### \`$presence\` on a room of ${LARGE_ROOM.toLocaleString('en')} members`, '',
    '| broker | request | reply KB | p50 ms, no watcher on the node | p99 ms | p50 ms, a watcher on the node | p99 ms |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const [index, broker] of brokers.entries()) {
    for (const [kind, { label }] of READ_KINDS.entries()) {
      const cell = (phase: keyof ReadResult, pick: (s: ReadSample) => number, digits: number, scale = 1): string =>
        spread(samples[index]!.map((result) => pick(result[phase][kind]!)), digits, scale)
      body.push(`| ${broker.label} | ${label} | ${cell('unwatched', (s) => s.bytes, 1, 1024)} | ${cell('unwatched', (s) => s.p50, 2)} | ${cell('unwatched', (s) => s.p99, 2)} | ` +
        `${cell('watched', (s) => s.p50, 2)} | ${cell('watched', (s) => s.p99, 2)} |`)
    }
  }
  return body
}

async function subscribeTable (): Promise<{ body: string[], ratio: number }> {
  const samples = SUBSCRIBE_VARIANTS.map((): SubscribeSample[] => [])
  for (let run = 0; run < RUNS; run++) {
    for (const [index, variant] of SUBSCRIBE_VARIANTS.entries()) samples[index]!.push(await measureSubscribe(variant))
  }
  const rate = (index: number): number => median(samples[index]!.map((s) => s.connectionsPerSecond))
  const cpu = (index: number): number => median(samples[index]!.map((s) => s.cpuMicrosPerConnection))
  const body = [
    `### ${SUBSCRIBERS.toLocaleString('en')} connections, each subscribing to a room of ${ROOM_SIZE}`, '',
    '| route | connections/s | server CPU µs/connection | connections/s vs without presence | CPU/connection vs without presence |',
    '| --- | ---: | ---: | ---: | ---: |'
  ]
  for (const [index, variant] of SUBSCRIBE_VARIANTS.entries()) {
    const list = samples[index]!
    body.push(`| ${variant.label} | ${spread(list.map((s) => s.connectionsPerSecond), 0)} | ${spread(list.map((s) => s.cpuMicrosPerConnection), 0)} | ` +
      `${(rate(index) / rate(0)).toFixed(2)}× | ${(cpu(index) / cpu(0)).toFixed(2)}× |`)
  }
  return { body, ratio: rate(SUBSCRIBE_VARIANTS.findIndex((variant) => variant.presence)) / rate(0) }
}

export async function runPresence (): Promise<Section> {
  const join = await joinTable()
  const read = await readTable()
  const subscribe = await subscribeTable()
  return {
    title: 'Presence',
    method: `Members on raw TCP sockets, one load generator process. Joining: ${JOINING.toLocaleString('en')} connections started evenly over ${JOIN_OVER_MS / 1000} s, each \`$subscribe\`s ` +
      `with \`presence: true\` and then reads \`$presence\` (limit ${MAX_PRESENCE_LIMIT}) as the client library does; every frame counts (welcome, replies, diffs) until no member has heard anything for ` +
      `${QUIET_MS} ms, and member 0's view must hold every member. \`$presence\`: the room is filled with ${LARGE_ROOM.toLocaleString('en')} entries through the server's broker, ` +
      `as other nodes' members would be, then one connection sends ${READS} sequential requests of each kind (after ${READ_WARMUP} unmeasured), first without subscribing, then as a watcher of the room; ` +
      `Redis is a redis-server of this run's own. Connecting: ${CONCURRENCY} handshakes in flight, each connection \`$subscribe\`s to room \`i mod ${Math.ceil(SUBSCRIBERS / ROOM_SIZE)}\` and waits for the reply, a fresh server for each variant; ` +
      'server CPU is user + system time of the server process from before the first handshake to the last reply.',
    body: [...join.body, '', ...read, '', ...subscribe.body],
    verdicts: [
      { target: `frames per member while ${JOINING.toLocaleString('en')} join one room within ${JOIN_OVER_MS / 1000} s ≤ ${FRAMES_TARGET}`, measured: join.perMember.toFixed(1), met: join.perMember <= FRAMES_TARGET },
      verdict('connections per second, subscribing to a room with presence, ≥ 0.9× without', subscribe.ratio, subscribe.ratio >= 0.9)
    ]
  }
}
