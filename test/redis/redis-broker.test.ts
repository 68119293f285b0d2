import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, test } from 'node:test'
import { Redis } from 'ioredis'
import { BrokerUnavailableError, type TopicEntry } from '../../plugin/index.js'
import { RedisBroker, type RedisBrokerOptions } from '../../plugin/broker/redis.js'
import { brokerContract } from '../helpers/broker-contract.js'
import { startRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/server.js'

// One redis-server for the tests that do not kill it, stopped after the last of them.
const shared = await startRedis({ after: (fn: () => Promise<void>) => after(fn) })

// Each broker gets its own key prefix: a fresh namespace is a topic space whose history is gone.
brokerContract('RedisBroker', {
  create: async (historySize) => await readyBroker({ url: shared.url, historySize, keyPrefix: `contract:${randomBytes(4).toString('hex')}:` }),
  deliveryTimeoutMs: 2_000,
  createPeers: async () => {
    const keyPrefix = `contract:${randomBytes(4).toString('hex')}:`
    return [await readyBroker({ url: shared.url, keyPrefix }), await readyBroker({ url: shared.url, keyPrefix })]
  }
})

async function readyBroker (options: RedisBrokerOptions): Promise<RedisBroker> {
  const broker = new RedisBroker(options)
  await eventually(() => broker.healthy, 5_000, 'the broker to connect')
  return broker
}

function recorder () {
  const entries: TopicEntry[] = []
  return { entries, listener: (entry: TopicEntry) => { entries.push(entry) }, data: () => entries.map((entry) => entry.data) }
}

test('RedisBroker: an entry published on one node reaches the listeners of another', async (t) => {
  const keyPrefix = `nodes:${randomBytes(4).toString('hex')}:`
  const nodeA = await readyBroker({ url: shared.url, keyPrefix })
  const nodeB = await readyBroker({ url: shared.url, keyPrefix })
  t.after(async () => { await nodeA.close(); await nodeB.close() })
  const onB = recorder()
  await nodeB.subscribe('room', onB.listener)
  const published = []
  for (let i = 0; i < 10; i++) published.push(await nodeA.publish('room', { event: 'e', data: String(i), publishedAt: Date.now() }))
  await eventually(() => onB.entries.length === 10, 2_000, 'ten deliveries on node B')
  assert.deepEqual(onB.entries.map((entry) => entry.offset), published.map((position) => position.offset))
  assert.ok(onB.entries.every((entry) => typeof entry.publishedAt === 'number'))
  assert.deepEqual(await nodeB.position('room'), published.at(-1))
})

test('RedisBroker: Redis down at start means UNAVAILABLE at once, and it connects by itself when Redis comes', async (t) => {
  const redis = await startRedis(t, { started: false })
  const broker = new RedisBroker({ url: redis.url, keyPrefix: 'late:' })
  t.after(() => broker.close())
  assert.equal(broker.healthy, false)
  const startedAt = Date.now()
  await assert.rejects(broker.publish('x', { event: 'e', data: '1' }), BrokerUnavailableError)
  await assert.rejects(broker.subscribe('x', () => {}), BrokerUnavailableError)
  assert.ok(Date.now() - startedAt < 1_000, 'refused at once, not queued')
  await redis.start()
  await eventually(() => broker.healthy, 5_000, 'the broker to connect')
  const listener = recorder()
  await broker.subscribe('x', listener.listener)
  await broker.publish('x', { event: 'e', data: '2' })
  await eventually(() => listener.entries.length === 1, 2_000, 'the delivery')
})

test('RedisBroker: Redis killed mid-run → UNAVAILABLE, then it recovers by itself and reports the lost history as a new epoch', async (t) => {
  const redis = await startRedis(t)
  const logs: string[] = []
  const log = { info: (_fields: object, message: string) => { logs.push(message) }, warn: (_fields: object, message: string) => { logs.push(message) } }
  const broker = await readyBroker({ url: redis.url, keyPrefix: 'crash:', log })
  t.after(() => broker.close())
  const listener = recorder()
  await broker.subscribe('room', listener.listener)
  const before = await broker.publish('room', { event: 'e', data: 'before' })
  await eventually(() => listener.entries.length === 1, 2_000, 'the first delivery')

  await redis.stop('SIGKILL')
  await eventually(() => !broker.healthy, 2_000, 'the broker to notice')
  await assert.rejects(broker.publish('room', { event: 'e', data: 'lost' }), BrokerUnavailableError)
  assert.ok(logs.includes('broker.disconnected'))

  await redis.start()
  await eventually(() => broker.healthy, 5_000, 'the broker to reconnect')
  assert.ok(logs.includes('broker.reconnected'))
  const after = await broker.publish('room', { event: 'e', data: 'after' })
  assert.notEqual(after.epoch, before.epoch, 'Redis kept nothing: a new epoch says so')
  await eventually(() => listener.entries.length === 2, 2_000, 'delivery after the restart, on the channel subscribed again')
  assert.deepEqual(listener.data(), ['before', 'after'])
  const history = await broker.history('room', before.offset)
  assert.equal(history.position.epoch, after.epoch)
})

test('RedisBroker: a killed pub/sub link loses nothing: the gap is re-read from the stream, in order, once', async (t) => {
  const keyPrefix = `gap:${randomBytes(4).toString('hex')}:`
  const logs: string[] = []
  const subscriberNode = await readyBroker({ url: shared.url, keyPrefix, log: { info: (_f, message) => { logs.push(message) }, warn: (_f, message) => { logs.push(message) } } })
  const publisherNode = await readyBroker({ url: shared.url, keyPrefix })
  const admin = new Redis(shared.url)
  t.after(async () => { await subscriberNode.close(); await publisherNode.close(); admin.disconnect() })
  const listener = recorder()
  await subscriberNode.subscribe('room', listener.listener)
  await publisherNode.publish('room', { event: 'e', data: '0' })
  await eventually(() => listener.entries.length === 1, 2_000, 'the first delivery')

  assert.ok(Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')) >= 1)
  // Published while the node has no pub/sub link: only the stream holds these.
  for (let i = 1; i <= 20; i++) await publisherNode.publish('room', { event: 'e', data: String(i) })
  await eventually(() => listener.entries.length === 21, 5_000, 'all 21 entries')
  for (let i = 21; i <= 25; i++) await publisherNode.publish('room', { event: 'e', data: String(i) })
  await eventually(() => listener.entries.length === 26, 2_000, 'live delivery again')
  await new Promise((resolve) => setTimeout(resolve, 100))
  assert.deepEqual(listener.data(), Array.from({ length: 26 }, (_, i) => String(i)), 'every entry, in order, once')
  assert.ok(logs.includes('broker.gap_repaired'), 'the repair is logged')
})

test('RedisBroker: refuses a history size below one', () => {
  assert.throws(() => new RedisBroker({ historySize: 0, redisOptions: { lazyConnect: true } }), /historySize/)
})

test('RedisBroker: a second subscribe to a topic still being set up waits for it, and fails with it', async (t) => {
  const keyPrefix = `setup:${randomBytes(4).toString('hex')}:`
  const broker = await readyBroker({ url: shared.url, keyPrefix })
  t.after(() => broker.close())
  const first = recorder()
  const second = recorder()
  await Promise.all([broker.subscribe('room', first.listener), broker.subscribe('room', second.listener)])
  await broker.publish('room', { event: 'e', data: 'both' })
  await eventually(() => first.entries.length === 1 && second.entries.length === 1, 2_000, 'both listeners')

  const down = await startRedis(t, { started: false })
  const unreachable = new RedisBroker({ url: down.url, keyPrefix })
  t.after(() => unreachable.close())
  const results = await Promise.allSettled([unreachable.subscribe('room', () => {}), unreachable.subscribe('room', () => {})])
  assert.deepEqual(results.map((result) => result.status), ['rejected', 'rejected'], 'nobody believes it is subscribed')
})

test('RedisBroker: refuses a topic TTL or command timeout that is not a positive integer, and a presence lease under 500 ms', () => {
  assert.throws(() => new RedisBroker({ topicTtlSeconds: 0, redisOptions: { lazyConnect: true } }), /topicTtlSeconds/)
  assert.throws(() => new RedisBroker({ commandTimeoutMs: -1, redisOptions: { lazyConnect: true } }), /commandTimeoutMs/)
  assert.throws(() => new RedisBroker({ presenceLeaseMs: 499, redisOptions: { lazyConnect: true } }), /presenceLeaseMs is invalid: expected an integer >= 500/)
})
