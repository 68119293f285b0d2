import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import realtime, { BrokerUnavailableError, MemoryBroker, type RealtimeOptions } from '../../plugin/index.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { eventually, listen, logCollector, startServer, type TestServer } from '../helpers/server.js'

const MemberInfo = Type.Object({ name: Type.String() })

/** Rooms have presence; `hidden:` topics may be subscribed but have none; a member named "explode" cannot be built. */
function declarePresenceRoute (app: FastifyInstance) {
  return app.wsRoute('/ws', {
    authorizeSubscribe: (topic) => topic.startsWith('room:') || topic.startsWith('hidden:'),
    presence: {
      info: MemberInfo,
      member: (connection) => {
        const name = String(connection.identity?.name)
        if (name === 'explode') throw new Error('member info unavailable')
        // `secret` is not in the schema: it must never leave the server.
        return { name, secret: 'do not leak' } as { name: string }
      },
      authorize: (topic) => topic.startsWith('room:')
    }
  })
}

const identified: RealtimeOptions = {
  authenticate: (request) => ({ id: String(request.headers['x-user']), name: String(request.headers['x-name'] ?? request.headers['x-user']) })
}

async function connectAs (t: TestContext, server: TestServer, user: string, name = user): Promise<TestClient> {
  return await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': user, 'x-name': name } })
}

const isDiff = (frame: Frame): boolean => frame.type === '$presence.diff'

/** Diff frames until `predicate` holds over all of them, or a timeout. */
async function diffsUntil (client: TestClient, predicate: (diffs: Frame[]) => boolean, timeoutMs = 2_000): Promise<Frame[]> {
  const diffs: Frame[] = []
  const deadline = Date.now() + timeoutMs
  while (!predicate(diffs)) diffs.push(await client.next(isDiff, Math.max(1, deadline - Date.now())))
  return diffs
}

const joinsOf = (diffs: Frame[]): Array<Record<string, unknown>> => diffs.flatMap((diff) => diff.data.joins)
const leavesOf = (diffs: Frame[]): Array<Record<string, unknown>> => diffs.flatMap((diff) => diff.data.leaves)

test('presence: members see each other join and leave; a user with two connections is one member with two entries; info goes through its schema', async (t) => {
  const server = await startServer(t, (app) => { declarePresenceRoute(app) }, identified)
  const alice = await connectAs(t, server, 'u-alice', 'Alice')
  const subscribed = await alice.request('$subscribe', { topic: 'room:lobby', presence: true })
  assert.deepEqual(subscribed.data.presence, {
    topic: 'room:lobby',
    users: 1,
    connections: 1,
    members: [{ user: 'u-alice', connections: [{ connection: alice.welcome!.data.connectionId, info: { name: 'Alice' } }] }]
  }, 'a watcher gets the members with its subscription, itself included')
  const [self] = await diffsUntil(alice, (diffs) => joinsOf(diffs).length >= 1)
  assert.deepEqual(self!.data, { joins: [{ user: 'u-alice', connection: alice.welcome!.data.connectionId, info: { name: 'Alice' } }], leaves: [] }, 'a watcher hears its own join')
  const alone = await alice.request('$presence', { topic: 'room:lobby' })
  assert.deepEqual(alone.data, {
    topic: 'room:lobby',
    users: 1,
    connections: 1,
    members: [{ user: 'u-alice', connections: [{ connection: alice.welcome!.data.connectionId, info: { name: 'Alice' } }] }]
  })

  const bobPhone = await connectAs(t, server, 'u-bob', 'Bob')
  await bobPhone.request('$subscribe', { topic: 'room:lobby' })
  const [joined] = await diffsUntil(alice, (diffs) => joinsOf(diffs).length >= 1)
  assert.deepEqual(joined, {
    type: '$presence.diff',
    topic: 'room:lobby',
    data: { joins: [{ user: 'u-bob', connection: bobPhone.welcome!.data.connectionId, info: { name: 'Bob' } }], leaves: [] }
  })
  const bobLaptop = await connectAs(t, server, 'u-bob', 'Bob')
  await bobLaptop.request('$subscribe', { topic: 'room:lobby' })
  await diffsUntil(alice, (diffs) => joinsOf(diffs).length >= 1)
  const both = (await alice.request('$presence', { topic: 'room:lobby' })).data
  assert.equal(both.users, 2)
  assert.equal(both.connections, 3)
  const bob = both.members.find((member: { user: string }) => member.user === 'u-bob')
  assert.deepEqual(new Set(bob.connections.map((entry: { connection: string }) => entry.connection)), new Set([bobPhone.welcome!.data.connectionId, bobLaptop.welcome!.data.connectionId]))
  assert.ok(!JSON.stringify(both).includes('do not leak'), 'undeclared member fields never leave')

  // Bob's phone goes: one entry leaves, Bob stays with his laptop; then the laptop unsubscribes.
  bobPhone.socket.close()
  const phoneGone = await diffsUntil(alice, (diffs) => leavesOf(diffs).length >= 1)
  assert.deepEqual(leavesOf(phoneGone), [{ user: 'u-bob', connection: bobPhone.welcome!.data.connectionId }])
  assert.equal((await alice.request('$presence', { topic: 'room:lobby', count: true })).data.users, 2)
  await bobLaptop.request('$unsubscribe', { topic: 'room:lobby' })
  await diffsUntil(alice, (diffs) => leavesOf(diffs).length >= 1)
  assert.deepEqual((await alice.request('$presence', { topic: 'room:lobby', count: true })).data, { topic: 'room:lobby', users: 1, connections: 1 })
})

test('presence: joins and leaves within one window are coalesced into one frame per watcher; what cancels out is never sent', async (t) => {
  const server = await startServer(t, (app) => { declarePresenceRoute(app) }, { ...identified, presenceWindowMs: 300 })
  const watcher = await connectAs(t, server, 'watcher')
  await watcher.request('$subscribe', { topic: 'room:busy', presence: true })
  await diffsUntil(watcher, (seen) => joinsOf(seen).length >= 1)
  const members = await Promise.all(Array.from({ length: 30 }, async (_, i) => await connectAs(t, server, `u${i}`)))
  await Promise.all(members.map(async (member) => await member.request('$subscribe', { topic: 'room:busy' })))
  // One of them leaves at once: it joined and left within the window.
  await members[0]!.request('$unsubscribe', { topic: 'room:busy' })
  const diffs = await diffsUntil(watcher, (seen) => joinsOf(seen).length >= 29)
  assert.ok(diffs.length <= 2, `${diffs.length} frames for 29 joins`)
  assert.equal(joinsOf(diffs).length, 29)
  assert.ok(!joinsOf(diffs).some((entry) => entry.user === 'u0'), 'a join and leave within one window cancel out')
  assert.deepEqual(leavesOf(diffs), [])
  await assert.rejects(watcher.next(isDiff, 500), /no matching frame/, 'nothing more to tell')
})

test('presence: $presence caps the members it lists and always gives the totals; count gives only the totals', async (t) => {
  const server = await startServer(t, (app) => { declarePresenceRoute(app) }, identified)
  const clients = await Promise.all(Array.from({ length: 5 }, async (_, i) => await connectAs(t, server, `u${i}`)))
  await Promise.all(clients.map(async (client) => await client.request('$subscribe', { topic: 'room:cap' })))
  const capped = (await clients[0]!.request('$presence', { topic: 'room:cap', limit: 2 })).data
  assert.equal(capped.users, 5)
  assert.equal(capped.members.length, 2)
  assert.deepEqual((await clients[0]!.request('$presence', { topic: 'room:cap', count: true })).data, { topic: 'room:cap', users: 5, connections: 5 })
  const tooMany = await clients[0]!.request('$presence', { topic: 'room:cap', limit: 1001 })
  assert.equal(tooMany.error.code, 'VALIDATION_FAILED')
})

test('presence: a topic without presence, or a route without any, answers FORBIDDEN; a member function that throws fails only that $subscribe', async (t) => {
  const server = await startServer(t, (app) => {
    declarePresenceRoute(app)
    app.wsRoute('/plain', { authorizeSubscribe: () => true })
  }, identified)
  const alice = await connectAs(t, server, 'alice')
  await alice.request('$subscribe', { topic: 'room:x', presence: true })
  await diffsUntil(alice, (diffs) => joinsOf(diffs).length >= 1)
  for (const [data, what] of [[{ topic: 'hidden:x' }, '$presence'], [{ topic: 'hidden:x', presence: true }, '$subscribe']] as const) {
    const refused = await alice.request(what, data)
    assert.equal(refused.error.code, 'FORBIDDEN', `${what} ${data.topic}`)
  }
  assert.equal((await alice.request('$subscribe', { topic: 'hidden:x' })).type, '$reply', 'subscribing without presence is allowed')
  const plain = await TestClient.connect(t, `${server.wsUrl}/plain`, { headers: { 'x-user': 'p' } })
  assert.equal((await plain.request('$presence', { topic: 'room:x' })).error.code, 'FORBIDDEN')
  assert.equal((await plain.request('$subscribe', { topic: 'room:x', presence: true })).error.code, 'FORBIDDEN')

  const broken = await connectAs(t, server, 'u-broken', 'explode')
  const failed = await broken.request('$subscribe', { topic: 'room:x' })
  assert.equal(failed.error.code, 'HANDLER_ERROR')
  assert.ok(server.logs.some((line) => line.msg === 'ws.handler_error' && line.level === 50), 'logged as an error')
  assert.equal((await broken.request('$presence', { topic: 'room:x', count: true })).data.users, 1, 'not a member, and still connected')
  assert.equal(broken.socket.readyState, broken.socket.OPEN)
  const bob = await connectAs(t, server, 'bob')
  await bob.request('$subscribe', { topic: 'room:x' })
  const [diff] = await diffsUntil(alice, (diffs) => joinsOf(diffs).length >= 1)
  assert.equal(joinsOf([diff!])[0]!.user, 'bob', 'the others carry on')
})

test('presence across two nodes on one broker: each sees the other\'s members; a drained node\'s members leave at once; metrics count them', async (t) => {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  const nodes: TestServer[] = []
  for (let i = 0; i < 2; i++) {
    const { stream, logs } = logCollector()
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(realtime, { ...identified, broker, drainMs: 50, presenceWindowMs: 300 })
    declarePresenceRoute(app)
    nodes.push(await listen(t, app, logs))
  }
  const [one, two] = nodes as [TestServer, TestServer]
  const watcher = await connectAs(t, one, 'watcher')
  await watcher.request('$subscribe', { topic: 'room:fleet', presence: true })
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  const remote = await Promise.all(['r1', 'r2', 'r3'].map(async (user) => await connectAs(t, two, user)))
  await Promise.all(remote.map(async (client) => await client.request('$subscribe', { topic: 'room:fleet' })))
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 3)
  assert.equal((await watcher.request('$presence', { topic: 'room:fleet', count: true })).data.users, 4)

  const metricsOf = async (node: TestServer): Promise<string> => await node.app.realtime.metricsRegistry!.metrics()
  assert.match(await metricsOf(two), /^ws_presence_members 3$/m)
  assert.match(await metricsOf(one), /^ws_presence_members 1$/m)
  assert.match(await metricsOf(one), /^ws_presence_changes_total\{change="join"\} 4$/m, 'the watcher and the three')
  assert.match(await metricsOf(one), /^ws_messages_sent_total\{route="\/ws",type="\$presence.diff"\} 2$/m, 'its own join, then one frame for the three')

  const closedAt = Date.now()
  await two.app.close()
  const diffs = await diffsUntil(watcher, (seen) => leavesOf(seen).length >= 3)
  assert.ok(Date.now() - closedAt < 1_000, `left ${Date.now() - closedAt} ms after the drain`)
  assert.deepEqual(new Set(leavesOf(diffs).map((entry) => entry.user)), new Set(['r1', 'r2', 'r3']))
  assert.deepEqual((await watcher.request('$presence', { topic: 'room:fleet', count: true })).data, { topic: 'room:fleet', users: 1, connections: 1 })
  await eventually(() => broker.historyEntries === 0, 100, 'presence is not history')
})

/** A memory broker whose presence updates fail while `down` is set, as Redis's do when it is gone. */
class FlakyPresenceBroker extends MemoryBroker {
  down = false

  override async updatePresence (...args: Parameters<MemoryBroker['updatePresence']>): Promise<void> {
    if (this.down) throw new BrokerUnavailableError('presence is down')
    await super.updatePresence(...args)
  }
}

test('presence: a join the broker refuses answers UNAVAILABLE, leaves no subscription and no member, and the gauge does not drift', async (t) => {
  const broker = new FlakyPresenceBroker()
  t.after(() => broker.close())
  const server = await startServer(t, (app) => { declarePresenceRoute(app) }, { ...identified, broker })
  const gauge = async (): Promise<string | undefined> => /^ws_presence_members (\d+)$/m.exec(await server.app.realtime.metricsRegistry!.metrics())?.[1]
  const alice = await connectAs(t, server, 'alice')
  broker.down = true
  for (let i = 0; i < 3; i++) assert.equal((await alice.request('$subscribe', { topic: 'room:flaky' })).error.code, 'UNAVAILABLE')
  broker.down = false
  assert.equal(await gauge(), '0')
  assert.deepEqual((await alice.request('$presence', { topic: 'room:flaky', count: true })).data, { topic: 'room:flaky', users: 0, connections: 0 })
  assert.equal((await alice.request('$subscribe', { topic: 'room:flaky' })).type, '$reply')
  assert.equal(await gauge(), '1')
  alice.socket.close()
  await alice.closed
  await eventually(() => server.app.realtime.connectionCount === 0, 1_000, 'the close')
  assert.equal(await gauge(), '0')
})

test('presence: a member subscribing again with new info joins again in the diffs; info that does not fit the schema, or is no JSON at all, fails that $subscribe alone', async (t) => {
  let mood = 'calm'
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', {
      authorizeSubscribe: () => true,
      presence: {
        info: Type.Object({ mood: Type.String() }),
        member: (connection) => (connection.identity?.id === 'odd' ? { mood: 42 } : { mood }) as { mood: string },
        authorize: () => true
      }
    })
    app.wsRoute('/loose', {
      authorizeSubscribe: () => true,
      presence: { info: Type.Unknown(), member: () => undefined, authorize: () => true }
    })
  }, identified)
  const watcher = await connectAs(t, server, 'watcher')
  await watcher.request('$subscribe', { topic: 'room:moods', presence: true })
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  const member = await connectAs(t, server, 'member')
  await member.request('$subscribe', { topic: 'room:moods' })
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  mood = 'cheerful'
  await member.request('$subscribe', { topic: 'room:moods' })
  const [changed] = await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  assert.deepEqual(changed!.data, { joins: [{ user: 'member', connection: member.welcome!.data.connectionId, info: { mood: 'cheerful' } }], leaves: [] })

  const odd = await connectAs(t, server, 'odd')
  assert.equal((await odd.request('$subscribe', { topic: 'room:moods' })).error.code, 'HANDLER_ERROR')
  const loose = await TestClient.connect(t, `${server.wsUrl}/loose`, { headers: { 'x-user': 'loose' } })
  assert.equal((await loose.request('$subscribe', { topic: 'room:loose' })).error.code, 'HANDLER_ERROR')
  assert.equal((await loose.request('$presence', { topic: 'room:loose', count: true })).data.users, 0, 'not a member')
  assert.equal((await watcher.request('$presence', { topic: 'room:moods', count: true })).data.users, 2, 'nor is odd')
  await assert.rejects(watcher.next(isDiff, 300), /no matching frame/, 'the watchers heard nothing of them')
})

test('presence: while a topic keeps changing its window widens, up to tenfold; after a quiet spell one change goes out within the base window', async (t) => {
  const server = await startServer(t, (app) => { declarePresenceRoute(app) }, { ...identified, presenceWindowMs: 40 })
  const watcher = await connectAs(t, server, 'watcher')
  await watcher.request('$subscribe', { topic: 'room:storm', presence: true })
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  // A steady stream of joins over about 1.2 s: thirty windows of 40 ms at the base width.
  const stormStartedAt = Date.now()
  for (let i = 0; i < 40; i++) {
    const member = await connectAs(t, server, `s${i}`)
    await member.request('$subscribe', { topic: 'room:storm' })
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, stormStartedAt + i * 30 - Date.now())))
  }
  const storm = await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 40, 3_000)
  assert.ok(storm.length <= 8, `${storm.length} frames for 40 joins over ${Date.now() - stormStartedAt} ms`)
  await assert.rejects(watcher.next(isDiff, 800), /no matching frame/)

  const lateAt = Date.now()
  const late = await connectAs(t, server, 'late')
  await late.request('$subscribe', { topic: 'room:storm' })
  await diffsUntil(watcher, (diffs) => joinsOf(diffs).length >= 1)
  assert.ok(Date.now() - lateAt < 400, `the change after the quiet spell took ${Date.now() - lateAt} ms`)
})
