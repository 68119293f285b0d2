/*
 * The fleet: what an action on a user costs and how soon every node applies it, and what an
 * idempotency key adds to a request. `sendToUser` and `disconnectUser` on one of 3 nodes, timed
 * until the user's slowest connection (one on each node) heard it, through Redis (a process per
 * node) and through a MemoryBroker the 3 nodes of one process share; then the same trivial
 * `echo` pipelined with and without a fresh idempotency key each, on one node of either broker.
 * Nodes are bench/fleet-server.ts, clients bench/fleet-load.ts.
 */
import type { ChildProcess, Serializable } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { startRedis } from '../test/helpers/redis.js'
import { LOAD_CORE, MEASURE_MS, RUNS, SERVER_CORE, WARMUP_MS, cpuMicros, median, pinned, spread, stop } from './harness.js'
import type { FleetLoadPlan, RequestsMark, UserSample } from './fleet-load.js'
import type { FleetAct, FleetActed, FleetServerPlan } from './fleet-server.js'
import type { Section } from './report.js'

const NODES = 3
const CALLS = Number(process.env.BENCH_FLEET_CALLS ?? 300)
const WARMUP_CALLS = 20
/** Calls at once when timing CPU, and how many such bursts (after some unmeasured). */
const BURST = 1_000
const BURSTS = 5
const WARMUP_BURSTS = 2
/** Longer than any step takes: a child that stops answering fails the part rather than hanging it. */
const STEP_TIMEOUT_MS = 60_000
const USER = 'ann'
const CONNECTIONS = 50
const INFLIGHT = 10
const BROKERS = [{ label: 'memory', redis: false }, { label: 'Redis', redis: true }]
const ACTIONS = [
  { label: '`route.sendToUser`', act: 'send' },
  { label: '`disconnectUser`', act: 'disconnect' }
] as const
/**
 * The answers a MemoryBroker keeps at most (`MAX_HELD` in plugin/broker/memory-once.ts, not
 * exported); past it each claim evicts the oldest. Keyed requests on the memory broker are
 * measured on both sides of it, each window placed by the count of requests the node answered.
 */
const MEMORY_HELD = 100_000
const SETTLE_KEYS = 10_000

/**
 * A window of one node's run: from the warm-up's end, or from a count of replies; for
 * MEASURE_MS, or until a count of replies if that comes first.
 */
interface Stretch {
  /** What the row adds to the request's label. */
  label: string
  fromReplies?: number
  untilReplies?: number
}

const WHOLE: Stretch = { label: '' }
const REQUESTS: Array<{ label: string, idempotent: boolean, stretches: (redis: boolean) => Stretch[] }> = [
  { label: 'plain', idempotent: false, stretches: () => [WHOLE] },
  {
    label: 'with an idempotency key',
    idempotent: true,
    stretches: (redis) => redis
      ? [WHOLE]
      : [
          { label: `, requests ${SETTLE_KEYS.toLocaleString('en')}–${(MEMORY_HELD - SETTLE_KEYS).toLocaleString('en')}`, fromReplies: SETTLE_KEYS, untilReplies: MEMORY_HELD - SETTLE_KEYS },
          { label: `, from request ${(MEMORY_HELD + SETTLE_KEYS).toLocaleString('en')} (past the ${MEMORY_HELD.toLocaleString('en')} answers it keeps)`, fromReplies: MEMORY_HELD + SETTLE_KEYS }
        ]
  }
]

/**
 * What a child sends, in order. Node emits each IPC message on a tick of its own, before any
 * promise continuation runs, so a listener added again after each message would miss the next
 * of several sent together: this one stays.
 */
interface Waiting {
  resolve: (message: unknown) => void
  reject: (err: Error) => void
}

class Inbox {
  readonly #child: ChildProcess
  readonly #what: string
  readonly #queued: unknown[] = []
  #waiting: Waiting | undefined
  #ended: Error | undefined

  constructor (child: ChildProcess, what: string) {
    this.#child = child
    this.#what = what
    child.on('message', (message) => {
      if (this.#waiting === undefined) this.#queued.push(message)
      else this.#settle((waiting) => waiting.resolve(message))
    })
    child.once('exit', (code) => {
      this.#ended = new Error(`${what} exited with ${String(code)}`)
      this.#settle((waiting) => waiting.reject(this.#ended!))
    })
  }

  /** The next message; fails if the child exited, or stays silent too long. */
  async next<T> (): Promise<T> {
    if (this.#queued.length > 0) return this.#queued.shift() as T
    if (this.#ended !== undefined) throw this.#ended
    return await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.#settle((waiting) => waiting.reject(new Error(`${this.#what} did not answer within ${STEP_TIMEOUT_MS} ms`))), STEP_TIMEOUT_MS)
      this.#waiting = {
        resolve: (message) => { clearTimeout(timer); resolve(message as T) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      }
    })
  }

  async ask<T> (message: Serializable): Promise<T> {
    this.#child.send(message)
    return await this.next<T>()
  }

  #settle (how: (waiting: Waiting) => void): void {
    const waiting = this.#waiting
    this.#waiting = undefined
    if (waiting !== undefined) how(waiting)
  }
}

interface Nodes {
  server: ChildProcess
  inbox: Inbox
  ports: number[]
}

async function startNodes (plan: FleetServerPlan): Promise<Nodes> {
  const server = pinned(SERVER_CORE, ['bench/fleet-server.ts', JSON.stringify(plan)])
  const controller = new AbortController()
  const { signal } = controller
  try {
    const [text] = await Promise.race([
      once(server.stdout!, 'data', { signal }) as Promise<[Buffer]>,
      once(server, 'exit', { signal }).then(([code]) => { throw new Error(`fleet node exited with ${String(code)}`) })
    ])
    return { server, inbox: new Inbox(server, 'fleet node'), ports: JSON.parse(text.toString()) as number[] }
  } finally {
    controller.abort()
  }
}

/** 3 nodes: one process sharing a MemoryBroker, or a process each on Redis. */
async function startFleet (redisUrl: string | undefined): Promise<Nodes[]> {
  if (redisUrl === undefined) return [await startNodes({ nodes: NODES })]
  const fleet: Nodes[] = []
  try {
    for (let i = 0; i < NODES; i++) fleet.push(await startNodes({ nodes: 1, redisUrl }))
  } catch (err) {
    await stop(...fleet.map((nodes) => nodes.server))
    throw err
  }
  return fleet
}

/** The load generator on its core, once it is ready. */
async function startLoad (plan: FleetLoadPlan): Promise<{ load: ChildProcess, inbox: Inbox }> {
  const load = pinned(LOAD_CORE, ['bench/fleet-load.ts', JSON.stringify(plan)])
  const inbox = new Inbox(load, `fleet load generator (${plan.job})`)
  try {
    if (await inbox.next() !== 'ready') throw new Error('the load generator did not start')
  } catch (err) {
    await stop(load)
    throw err
  }
  return { load, inbox }
}

/** User + system time of these node processes so far, in µs. */
async function processesCpu (fleet: Nodes[]): Promise<number> {
  let micros = 0
  for (const { inbox } of fleet) micros += cpuMicros({ user: 0, system: 0 }, await inbox.ask<NodeJS.CpuUsage>('cpu'))
  return micros
}

function percentile (sorted: number[], share: number): number {
  return sorted[Math.floor(sorted.length * share)] ?? NaN
}

interface Latency {
  p50: number
  p99: number
}

interface UserSampleSet {
  latency: Record<typeof ACTIONS[number]['act'], Latency>
  /** Every node's CPU per `sendToUser`, over bursts of calls at once. */
  cpuMicrosPerSend: number
}

async function measureUser (redisUrl: string | undefined): Promise<UserSampleSet> {
  const fleet = await startFleet(redisUrl)
  const servers = fleet.map((nodes) => nodes.server)
  const caller = fleet[0]!
  try {
    const { load, inbox } = await startLoad({ job: 'user', ports: fleet.flatMap((nodes) => nodes.ports), user: USER })
    servers.push(load)
    let seq = 0
    /** `count` calls, one at a time (bursts: BURST at once); each sample is the slowest connection's. */
    const calls = async (act: FleetAct['act'], count: number): Promise<number[]> => {
      const burst = act === 'burst' ? BURST : 1
      const latencies: number[] = []
      for (let i = 0; i < count; i += burst) {
        caller.server.send({ act, user: USER, seq, count: burst } satisfies FleetAct)
        const heard = async (): Promise<void> => {
          for (let n = 0; n < burst; n++) {
            const sample = await inbox.next<UserSample>()
            if (sample.seq < seq || sample.seq >= seq + burst) throw new Error(`${act}: call ${sample.seq} heard during calls ${seq}–${seq + burst - 1}`)
            latencies.push(sample.ms)
          }
        }
        const [acted] = await Promise.all([caller.inbox.next<FleetActed>(), heard()])
        if (acted.nodes !== NODES) throw new Error(`${act}: the broker told ${acted.nodes} nodes, not ${NODES}`)
        seq += burst
      }
      return latencies.sort((a, b) => a - b)
    }
    const latency = {} as UserSampleSet['latency']
    for (const { act } of ACTIONS) {
      await calls(act, WARMUP_CALLS)
      const latencies = await calls(act, CALLS)
      latency[act] = { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) }
    }
    await calls('burst', BURST * WARMUP_BURSTS)
    const before = await processesCpu(fleet)
    await calls('burst', BURST * BURSTS)
    return { latency, cpuMicrosPerSend: (await processesCpu(fleet) - before) / (BURST * BURSTS) }
  } finally {
    // The load generator first, when it started: it is the last of them.
    await stop(...servers.reverse())
  }
}

/** Redis's own CPU so far, in µs (`INFO cpu`). */
async function redisCpu (redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const seconds = (field: string): number => Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN)
  return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6
}

interface RequestsSample {
  requestsPerSecond: number
  cpuMicrosPerRequest: number
  redisCpuMicrosPerRequest: number
}

const POLL_MS = 20

/** One node's run of `echo` requests: a sample for each stretch, in order. */
async function measureRequests (redis: { url: string, client: Redis } | undefined, idempotent: boolean, stretches: Stretch[]): Promise<RequestsSample[]> {
  const node = await startNodes({ nodes: 1, ...(redis === undefined ? {} : { redisUrl: redis.url }) })
  const children = [node.server]
  // Keys of their own each run: one Redis serves every run.
  const keyPrefix = idempotent ? `${Math.random().toString(36).slice(2, 10)}-` : undefined
  try {
    const { load, inbox } = await startLoad({ job: 'requests', port: node.ports[0]!, connections: CONNECTIONS, inflight: INFLIGHT, ...(keyPrefix === undefined ? {} : { keyPrefix }) })
    children.unshift(load)
    const mark = async (): Promise<{ requests: RequestsMark, cpu: number, redis: number, at: number }> => {
      const requests = await inbox.ask<RequestsMark>('mark')
      const cpu = await processesCpu([node])
      return { requests, cpu, redis: redis === undefined ? NaN : await redisCpu(redis.client), at: performance.now() }
    }
    /** Marks every POLL_MS until the replies reach `replies` (or `deadline` passes); the last one. */
    const markAt = async (replies: number, deadline = Infinity): Promise<Awaited<ReturnType<typeof mark>>> => {
      for (;;) {
        const now = await mark()
        if (now.requests.replies >= replies || now.at >= deadline) return now
        await sleep(Math.min(POLL_MS, deadline - now.at))
      }
    }
    const samples: RequestsSample[] = []
    for (const stretch of stretches) {
      let start
      if (stretch.fromReplies === undefined) {
        await sleep(WARMUP_MS)
        start = await mark()
      } else {
        start = await markAt(stretch.fromReplies)
      }
      const end = stretch.untilReplies === undefined
        ? await sleep(MEASURE_MS).then(mark)
        : await markAt(stretch.untilReplies, start.at + MEASURE_MS)
      const replies = end.requests.replies - start.requests.replies
      const errors = end.requests.errors - start.requests.errors
      if (errors > 0) throw new Error(`${errors} requests were refused`)
      if (replies <= 0) throw new Error('no replies')
      samples.push({
        requestsPerSecond: replies / (end.at - start.at) * 1000,
        cpuMicrosPerRequest: (end.cpu - start.cpu) / replies,
        redisCpuMicrosPerRequest: (end.redis - start.redis) / replies
      })
    }
    return samples
  } finally {
    await stop(...children)
  }
}

export async function runFleet (): Promise<Section> {
  // The tests' own redis-server helper; what it would stop after a test, this part stops at the end.
  const cleanups: Array<() => Promise<void>> = []
  const redis = await startRedis({ after: (cleanup: () => Promise<void>) => { cleanups.push(cleanup) } })
  const client = new Redis(redis.url)
  const users = BROKERS.map((): UserSampleSet[] => [])
  /** By broker, request and stretch: a sample per run. */
  const requests = BROKERS.map((broker) => REQUESTS.map((request) => request.stretches(broker.redis).map((): RequestsSample[] => [])))
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const [index, broker] of BROKERS.entries()) users[index]!.push(await measureUser(broker.redis ? redis.url : undefined))
      for (const [index, broker] of BROKERS.entries()) {
        for (const [kind, request] of REQUESTS.entries()) {
          const samples = await measureRequests(broker.redis ? { url: redis.url, client } : undefined, request.idempotent, request.stretches(broker.redis))
          for (const [stretch, sample] of samples.entries()) requests[index]![kind]![stretch]!.push(sample)
        }
      }
    }
  } finally {
    client.disconnect()
    for (const cleanup of cleanups) await cleanup()
  }

  const userBody = [
    `### One user with a connection on each of ${NODES} nodes: from the call on one node to the last connection`, '',
    `| action | broker | p50 ms | p99 ms | p50 vs memory | every node's CPU µs/call, ${BURST.toLocaleString('en')} at once |`,
    '| --- | --- | ---: | ---: | ---: | ---: |'
  ]
  for (const { label, act } of ACTIONS) {
    const p50 = (index: number): number => median(users[index]!.map((s) => s.latency[act].p50))
    for (const [index, broker] of BROKERS.entries()) {
      const list = users[index]!
      const cpu = act === 'send' ? spread(list.map((s) => s.cpuMicrosPerSend), 0) : '—'
      userBody.push(`| ${label} | ${broker.label} | ${spread(list.map((s) => s.latency[act].p50), 2)} | ${spread(list.map((s) => s.latency[act].p99), 2)} | ` +
        `${(p50(index) / p50(0)).toFixed(2)}× | ${cpu} |`)
    }
  }

  const requestBody = [
    `### \`echo\` pipelined, ${CONNECTIONS} connections × ${INFLIGHT} in flight, one node`, '',
    '| broker | request | requests/s | server CPU µs/request | Redis CPU µs/request | requests/s vs plain | server CPU/request vs plain |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |'
  ]
  for (const [index, broker] of BROKERS.entries()) {
    const plain = requests[index]![0]![0]!
    for (const [kind, request] of REQUESTS.entries()) {
      for (const [stretch, { label }] of request.stretches(broker.redis).entries()) {
        const list = requests[index]![kind]![stretch]!
        const ratio = (pick: (s: RequestsSample) => number): string => (median(list.map(pick)) / median(plain.map(pick))).toFixed(2) + '×'
        const redisCell = broker.redis ? spread(list.map((s) => s.redisCpuMicrosPerRequest), 2) : '—'
        requestBody.push(`| ${broker.label} | ${request.label}${label} | ${spread(list.map((s) => s.requestsPerSecond), 0)} | ${spread(list.map((s) => s.cpuMicrosPerRequest), 2)} | ${redisCell} | ` +
          `${ratio((s) => s.requestsPerSecond)} | ${ratio((s) => s.cpuMicrosPerRequest)} |`)
      }
    }
  }

  return {
    title: 'Fleet: user actions and idempotent requests',
    method: `User actions: ${NODES} nodes, through Redis (a process each, sharing the server core) or a MemoryBroker the ${NODES} nodes of one process share; ` +
      `the user has one raw TCP connection on each node. Node 0 is asked over IPC to act, ${CALLS} sequential calls of each action after ${WARMUP_CALLS} unmeasured; ` +
      'each is timed from just before the call on node 0 (a stamp on the machine\'s monotonic clock, carried in the event\'s data or the close reason) to the moment its slowest connection ' +
      'read the event or the close frame; after a disconnect all three connect again before the next call. CPU per `sendToUser` is every node process\'s user + system time ' +
      `over ${BURSTS} bursts of ${BURST.toLocaleString('en')} calls made at once (after ${WARMUP_BURSTS} unmeasured), until every connection heard every call. Idempotent requests: \`echo\` (a TypeBox-validated \`{ text }\` answered in kind) on one node, ${CONNECTIONS} connections ` +
      `(one user each) × ${INFLIGHT} in flight, closed loop; the keyed variant sends every request with a fresh \`idempotencyKey\`, so each is claimed and its answer stored, never replayed. ` +
      `A fresh node for each; its window is the ${MEASURE_MS} ms after a ${WARMUP_MS} ms warm-up, except keyed requests on the memory broker, whose node is measured twice: ` +
      `from its ${SETTLE_KEYS.toLocaleString('en')}th to its ${(MEMORY_HELD - SETTLE_KEYS).toLocaleString('en')}th reply (or ${MEASURE_MS} ms), and for ${MEASURE_MS} ms from its ${(MEMORY_HELD + SETTLE_KEYS).toLocaleString('en')}th, ` +
      `beyond the ${MEMORY_HELD.toLocaleString('en')} answers a MemoryBroker keeps before each claim evicts the oldest. ` +
      'Server CPU is the node process\'s user + system time over the window, Redis CPU redis-server\'s (`INFO cpu`). Redis is a redis-server of this run\'s own. No targets.',
    body: [...userBody, '', ...requestBody],
    verdicts: []
  }
}
