/*
 * The nodes of the fleet part: `node --import tsx bench/fleet-server.ts '<FleetServerPlan>'`.
 * With a Redis URL the process is one node with a RedisBroker of its own; without, it holds
 * `nodes` apps sharing one MemoryBroker, as nodes in one process would. Every node serves `/ws`,
 * whose connections are the user their `x-user` header names, with a `notice` event and an
 * `echo` message. It prints the nodes' ports (JSON) on stdout and answers on the IPC channel:
 * `cpu`, and a `FleetAct` (node 0 sends to or disconnects a user; what it sends carries the
 * call's start on the machine's monotonic clock, which every process on it shares).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from 'typebox'
import realtime, { MemoryBroker, type Broker } from '../plugin/index.js'
import { RedisBroker } from '../plugin/broker/redis.js'
import { monotonicMicros } from './fleet-clock.js'

export interface FleetServerPlan {
  /** Apps in this process; with a Redis URL, one. */
  nodes: number
  redisUrl?: string
}

/**
 * Node 0 acts on `user` and answers with how many nodes the broker told; a `burst` is `count`
 * calls of `sendToUser` at once, `seq` onwards.
 */
export interface FleetAct {
  act: 'send' | 'disconnect' | 'burst'
  user: string
  seq: number
  count?: number
}

export interface FleetActed {
  nodes: number
}

const Notice = Type.Object({ seq: Type.Integer(), sentAt: Type.Number() })
const EchoData = Type.Object({ text: Type.String({ maxLength: 1000 }) })
const EchoReply = Type.Object({ text: Type.String() })

async function startNode (broker: Broker) {
  const app: FastifyInstance = Fastify()
  await app.register(realtime, {
    broker,
    // The load generators answer no pings, and send as fast as the node answers.
    heartbeatMs: 0,
    messagesPerSecond: 0,
    identityMessagesPerSecond: 0,
    drainMs: 100,
    authenticate: (request) => ({ id: String(request.headers['x-user']) })
  })
  const route = app.wsRoute('/ws', { events: { notice: Notice } })
    .message('echo', { data: EchoData, reply: EchoReply }, (data) => ({ text: data.text }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address')
  return { app, route, port: address.port }
}

const plan = JSON.parse(process.argv[2] ?? '{}') as FleetServerPlan
const brokers: Broker[] = []
if (plan.redisUrl === undefined) {
  brokers.push(new MemoryBroker())
} else {
  if (plan.nodes !== 1) throw new Error('a Redis node is one per process')
  const broker = new RedisBroker({ url: plan.redisUrl, keyPrefix: 'bench-fleet:' })
  // Commands fail at once until it is up; the fleet channel is subscribed as the app starts.
  while (!broker.healthy) await sleep(10)
  brokers.push(broker)
}
const nodes: Array<Awaited<ReturnType<typeof startNode>>> = []
for (let i = 0; i < plan.nodes; i++) nodes.push(await startNode(brokers[0]!))
const caller = nodes[0]!

process.on('message', (message: 'cpu' | FleetAct) => {
  if (message === 'cpu') {
    process.send?.(process.cpuUsage())
    return
  }
  const { act, user, seq, count = 1 } = message
  const sentAt = monotonicMicros()
  const acted = act === 'disconnect'
    ? caller.app.realtime.disconnectUser(user, { reason: `${seq}@${sentAt}` })
    : Promise.all(Array.from({ length: act === 'burst' ? count : 1 }, async (_, i) => await caller.route.sendToUser(user, 'notice', { seq: seq + i, sentAt })))
      .then((results) => ({ nodes: Math.min(...results.map((result) => result.nodes)) }))
  acted.then(({ nodes }) => process.send?.({ nodes } satisfies FleetActed), (err: unknown) => {
    console.error(err)
    process.exit(1)
  })
})
process.on('disconnect', () => {
  Promise.all(nodes.map(async ({ app }) => await app.close()))
    .then(async () => { for (const broker of brokers) await broker.close() })
    .finally(() => process.exit(0))
    .catch(() => process.exit(1))
})
console.log(JSON.stringify(nodes.map((node) => node.port)))
