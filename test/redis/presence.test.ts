import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime from '../../plugin/index.js'
import { RedisBroker, type RedisBrokerOptions } from '../../plugin/broker/redis.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { startRedis } from '../helpers/redis.js'
import { eventually, listen, logCollector, type TestServer } from '../helpers/server.js'

const LEASE_MS = 800

interface PresenceNode {
  server: TestServer
  broker: RedisBroker
}

/** A node of the fleet: the plugin over its own RedisBroker, closed when the test ends. */
async function startNode (t: TestContext, options: RedisBrokerOptions): Promise<PresenceNode> {
  const broker = new RedisBroker({ presenceLeaseMs: LEASE_MS, commandTimeoutMs: 500, ...options })
  t.after(() => broker.close())
  await eventually(() => broker.healthy, 5_000, 'the broker to connect')
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(realtime, {
    broker,
    drainMs: 50,
    presenceWindowMs: 50,
    authenticate: (request) => ({ id: String(request.headers['x-user']) })
  })
  app.wsRoute('/ws', {
    authorizeSubscribe: () => true,
    presence: { info: Type.Object({ name: Type.String() }), member: (connection) => ({ name: `user ${connection.identity!.id}` }), authorize: () => true }
  })
  return { server: await listen(t, app, logs), broker }
}

async function member (t: TestContext, node: PresenceNode, user: string, watch = false): Promise<TestClient> {
  const client = await TestClient.connect(t, `${node.server.wsUrl}/ws`, { headers: { 'x-user': user } })
  const reply = await client.request('$subscribe', { topic: 'room:fleet', presence: watch })
  assert.equal(reply.type, '$reply', JSON.stringify(reply))
  return client
}

/** The users a node's `$presence` lists, through one of its clients. */
async function usersSeenBy (client: TestClient): Promise<string[]> {
  const reply = await client.request('$presence', { topic: 'room:fleet', limit: 1000 })
  if (reply.type !== '$reply') return [`error ${reply.error.code as string}`]
  return reply.data.members.map((entry: { user: string }) => entry.user).sort()
}

/** What a watcher's diffs add up to, from the diffs it has received so far. */
class WatchedMembers {
  readonly users = new Map<string, Set<string>>()
  /** How many leaves each user's entries were told in. */
  readonly leaves = new Map<string, number>()
  readonly #client: TestClient

  constructor (client: TestClient) {
    this.#client = client
  }

  /** Applies every diff that has arrived. */
  catchUp (): string[] {
    for (const frame of this.#client.drain()) this.#apply(frame)
    return [...this.users.keys()].sort()
  }

  #apply (frame: Frame): void {
    if (frame.type !== '$presence.diff') return
    for (const { user, connection } of frame.data.leaves) {
      this.leaves.set(user, (this.leaves.get(user) ?? 0) + 1)
      this.users.get(user)?.delete(connection)
      if (this.users.get(user)?.size === 0) this.users.delete(user)
    }
    for (const { user, connection } of frame.data.joins) this.users.set(user, (this.users.get(user) ?? new Set()).add(connection))
  }
}

async function agree (clients: TestClient[], expected: string[], timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let seen: string[][] = []
  while (Date.now() < deadline) {
    seen = await Promise.all(clients.map(usersSeenBy))
    if (seen.every((users) => JSON.stringify(users) === JSON.stringify(expected))) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.fail(`${what}: expected ${JSON.stringify(expected)} everywhere, saw ${JSON.stringify(seen)}`)
}

test('Redis presence: a node that stops renewing (it died) loses its members everywhere within lease × 1.25, once', async (t) => {
  const redis = await startRedis(t)
  const keyPrefix = 'presence-dead:'
  const [one, two, doomed] = [await startNode(t, { url: redis.url, keyPrefix }), await startNode(t, { url: redis.url, keyPrefix }), await startNode(t, { url: redis.url, keyPrefix })]
  const watchers = [await member(t, one, 'w1', true), await member(t, two, 'w2', true)]
  const views = watchers.map((watcher) => new WatchedMembers(watcher))
  await member(t, doomed, 'd1')
  await member(t, doomed, 'd2')
  await agree(watchers, ['d1', 'd2', 'w1', 'w2'], 2_000, 'everyone joined')
  await eventually(() => views.every((view) => view.catchUp().length === 4), 2_000, 'the diffs to tell every watcher')

  // What a SIGKILL leaves behind: its entries in Redis, and nobody renewing them.
  const diedAt = Date.now()
  doomed.broker.close().catch(() => {})
  await agree(watchers, ['w1', 'w2'], LEASE_MS * 1.25 + 1_000, 'the dead node\'s members left')
  const tookMs = Date.now() - diedAt
  assert.ok(tookMs >= LEASE_MS * 0.5, `not before its lease could have run out (${tookMs} ms)`)
  await eventually(() => views.every((view) => view.catchUp().join() === 'w1,w2'), 1_000, 'the leaves to reach every watcher')
  await new Promise((resolve) => setTimeout(resolve, LEASE_MS))
  for (const view of views) {
    view.catchUp()
    assert.deepEqual(Object.fromEntries(view.leaves), { d1: 1, d2: 1 }, 'each leave told once, however many nodes noticed')
  }
})

test('Redis presence: Redis killed and restarted empty → every live node announces its members again and every watcher ends with the exact set', async (t) => {
  const redis = await startRedis(t)
  const keyPrefix = 'presence-restart:'
  const [one, two] = [await startNode(t, { url: redis.url, keyPrefix }), await startNode(t, { url: redis.url, keyPrefix })]
  const watcher = await member(t, one, 'watcher', true)
  const view = new WatchedMembers(watcher)
  const stays = await member(t, two, 'stays')
  const goes = await member(t, two, 'goes-during-outage')
  await member(t, one, 'local')
  await agree([watcher, stays], ['goes-during-outage', 'local', 'stays', 'watcher'], 2_000, 'everyone joined')

  await redis.stop('SIGKILL')
  await eventually(() => !one.broker.healthy && !two.broker.healthy, 5_000, 'both nodes to notice')
  // Its leave cannot reach Redis now; nor can a join.
  goes.socket.close()
  await goes.closed
  const late = await TestClient.connect(t, `${two.server.wsUrl}/ws`, { headers: { 'x-user': 'joins-during-outage' } })
  assert.equal((await late.request('$subscribe', { topic: 'room:fleet' })).error.code, 'UNAVAILABLE')
  await redis.start()
  await eventually(() => one.broker.healthy && two.broker.healthy, 10_000, 'both nodes to reconnect')

  const expected = ['local', 'stays', 'watcher']
  await agree([watcher, stays], expected, 5_000, 'after the restart')
  await eventually(() => view.catchUp().join() === expected.join(), 2_000, `the watcher's diffs to add up (${JSON.stringify(view.catchUp())})`)
  assert.deepEqual((await late.request('$subscribe', { topic: 'room:fleet' })).type, '$reply', 'joins work again')
  await agree([watcher, stays], ['joins-during-outage', ...expected], 2_000, 'the late joiner')
})

test('Redis presence: a churn of joins and leaves across three nodes ends with every node and every watcher agreeing', async (t) => {
  const redis = await startRedis(t)
  const keyPrefix = 'presence-churn:'
  const nodes = [await startNode(t, { url: redis.url, keyPrefix }), await startNode(t, { url: redis.url, keyPrefix }), await startNode(t, { url: redis.url, keyPrefix })]
  const watchers = await Promise.all(nodes.map(async (node, i) => await member(t, node, `watcher-${i}`, true)))
  const views = watchers.map((watcher) => new WatchedMembers(watcher))
  const open = new Map<string, TestClient>()
  let joins = 0
  let leaves = 0
  // 300 joins and about 200 leaves, interleaved, spread over the nodes in batches.
  for (let round = 0; round < 10; round++) {
    const joined = await Promise.all(Array.from({ length: 30 }, async (_, i) => {
      const user = `u${round}-${i}`
      return [user, await member(t, nodes[(round + i) % nodes.length]!, user)] as const
    }))
    for (const [user, client] of joined) open.set(user, client)
    joins += joined.length
    const leaving = [...open.keys()].filter((_, i) => i % 3 !== 0).slice(0, 20)
    await Promise.all(leaving.map(async (user) => {
      const client = open.get(user)!
      open.delete(user)
      if (leaves++ % 2 === 0) await client.request('$unsubscribe', { topic: 'room:fleet' })
      client.socket.close()
      await client.closed
    }))
  }
  assert.equal(joins, 300)
  assert.equal(leaves, 200)
  const expected = [...open.keys(), ...watchers.map((_, i) => `watcher-${i}`)].sort()
  await agree(watchers, expected, 5_000, 'after the churn')
  await eventually(() => views.every((view) => view.catchUp().join() === expected.join()), 2_000, 'every watcher\'s diffs to add up')
})
