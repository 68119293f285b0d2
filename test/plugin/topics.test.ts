import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { MemoryBroker, type RealtimeOptions, type TopicListener, type TopicPosition } from '../../plugin/index.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { eventually, startServer } from '../helpers/server.js'

const Note = Type.Object({ n: Type.Integer() })

function declareRoomRoute (app: FastifyInstance) {
  return app.wsRoute('/ws', {
    events: { note: Note },
    authorizeSubscribe: (topic) => topic.startsWith('room:')
  })
}

async function setup (t: Parameters<typeof startServer>[0], options: RealtimeOptions = {}) {
  let route!: ReturnType<typeof declareRoomRoute>
  const server = await startServer(t, (app) => { route = declareRoomRoute(app) }, options)
  const connect = async (): Promise<TestClient> => await TestClient.connect(t, `${server.wsUrl}/ws`)
  return { server, route, connect }
}

/** A memory broker that records every subscribe and unsubscribe it is asked for. */
class CountingBroker extends MemoryBroker {
  readonly calls: string[] = []

  override async subscribe (topic: string, listener: TopicListener): Promise<void> {
    this.calls.push(`subscribe ${topic}`)
    await super.subscribe(topic, listener)
  }

  override async unsubscribe (topic: string, listener: TopicListener): Promise<void> {
    this.calls.push(`unsubscribe ${topic}`)
    await super.unsubscribe(topic, listener)
  }
}

const notesOf = (frames: Frame[]): number[] => frames.filter((frame) => frame.type === 'note').map((frame) => frame.data.n)

test('$subscribe answers the topic position; published events carry topic and increasing offsets', async (t) => {
  const { route, connect } = await setup(t)
  const [a, b] = [await connect(), await connect()]
  const reply = await a.request('$subscribe', { topic: 'room:lobby' })
  assert.equal(reply.type, '$reply')
  assert.deepEqual({ ...reply.data, epoch: 'e' }, { topic: 'room:lobby', offset: '0-0', epoch: 'e', recovered: false })
  assert.equal((await b.request('$subscribe', { topic: 'room:lobby' })).data.epoch, reply.data.epoch)

  const first = await route.publish('room:lobby', 'note', { n: 1 })
  const second = await route.publish('room:lobby', 'note', { n: 2, extra: 'dropped' } as { n: number })
  for (const client of [a, b]) {
    const one = await client.next((frame) => frame.type === 'note')
    const two = await client.next((frame) => frame.type === 'note')
    assert.deepEqual(one, { type: 'note', topic: 'room:lobby', offset: first.offset, data: { n: 1 } })
    assert.deepEqual(two, { type: 'note', topic: 'room:lobby', offset: second.offset, data: { n: 2 } })
  }
})

test('topics a route does not allow are FORBIDDEN; a route without a policy allows none', async (t) => {
  const server = await startServer(t, (app) => {
    declareRoomRoute(app)
    app.wsRoute('/closed')
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const refused = await client.request('$subscribe', { topic: 'admin:secrets' })
  assert.deepEqual(refused.error, { code: 'FORBIDDEN', message: 'not allowed to subscribe to this topic' })
  const closed = await TestClient.connect(t, `${server.wsUrl}/closed`)
  assert.equal((await closed.request('$subscribe', { topic: 'room:lobby' })).error.code, 'FORBIDDEN')
  assert.ok(server.logs.some((line) => line.msg === 'ws.message_refused' && line.code === 'FORBIDDEN'))
})

test('$subscribe data is validated: topic required and bounded, since must be an offset', async (t) => {
  const { connect } = await setup(t)
  const client = await connect()
  for (const data of [{}, { topic: '' }, { topic: 'room:' + 'x'.repeat(300) }, { topic: 'room:a', since: 'yesterday' }, { topic: 'room:a', since: '1-2-3' }]) {
    const frame = await client.request('$subscribe', data)
    assert.equal(frame.error?.code, 'VALIDATION_FAILED', JSON.stringify(data))
  }
})

test('$unsubscribe answers the topic and stops delivery', async (t) => {
  const { route, connect } = await setup(t)
  const client = await connect()
  await client.request('$subscribe', { topic: 'room:a' })
  await route.publish('room:a', 'note', { n: 1 })
  await client.next((frame) => frame.type === 'note')
  assert.deepEqual(await client.request('$unsubscribe', { topic: 'room:a' }), { type: '$reply', id: 2, data: { topic: 'room:a' } })
  await route.publish('room:a', 'note', { n: 2 })
  assert.equal((await client.request('$unsubscribe', { topic: 'room:a' })).type, '$reply', 'unsubscribing twice is harmless')
  assert.deepEqual(notesOf(client.drain()), [])
})

test('resuming with since and epoch replays what was missed, in order, then goes live: recovered', async (t) => {
  const { route, connect } = await setup(t)
  const first = await connect()
  const joined = await first.request('$subscribe', { topic: 'room:r' })
  await route.publish('room:r', 'note', { n: 1 })
  const seen = await first.next((frame) => frame.type === 'note')
  first.socket.close()
  await first.closed

  await route.publish('room:r', 'note', { n: 2 })
  await route.publish('room:r', 'note', { n: 3 })
  const again = await connect()
  const resumed = await again.request('$subscribe', { topic: 'room:r', since: seen.offset, epoch: joined.data.epoch })
  assert.equal(resumed.data.recovered, true)
  await route.publish('room:r', 'note', { n: 4 })
  await again.next((frame) => frame.type === 'note' && frame.data.n === 4)
  const frames = again.drain()
  assert.deepEqual(notesOf(frames), [2, 3])
})

test('a resume reaching past the history replays what is held and says recovered: false', async (t) => {
  const { route, connect } = await setup(t, { broker: new MemoryBroker({ historySize: 2 }) })
  const first = await route.publish('room:old', 'note', { n: 1 })
  for (let n = 2; n <= 5; n++) await route.publish('room:old', 'note', { n })
  const client = await connect()
  const reply = await client.request('$subscribe', { topic: 'room:old', since: first.offset, epoch: first.epoch })
  assert.equal(reply.data.recovered, false)
  const four = await client.next((frame) => frame.type === 'note')
  const five = await client.next((frame) => frame.type === 'note')
  assert.deepEqual([four.data.n, five.data.n], [4, 5], 'the two entries still held, in order')
})

test('a resume from another epoch replays nothing and says recovered: false', async (t) => {
  const { route, connect } = await setup(t)
  const first = await route.publish('room:e', 'note', { n: 1 })
  const latest = await route.publish('room:e', 'note', { n: 2 })
  const client = await connect()
  const reply = await client.request('$subscribe', { topic: 'room:e', since: first.offset, epoch: 'an-old-epoch' })
  assert.deepEqual(reply.data, { topic: 'room:e', offset: latest.offset, epoch: latest.epoch, recovered: false })
  await route.publish('room:e', 'note', { n: 3 })
  await client.next((frame) => frame.type === 'note' && frame.data.n === 3)
  assert.deepEqual(notesOf(client.drain()), [], 'nothing from the unknown history')
})

test('without since, recovered is false and only events after the answered offset arrive', async (t) => {
  const { route, connect } = await setup(t)
  await route.publish('room:n', 'note', { n: 1 })
  const client = await connect()
  const reply = await client.request('$subscribe', { topic: 'room:n' })
  assert.equal(reply.data.recovered, false)
  await route.publish('room:n', 'note', { n: 2 })
  await client.next((frame) => frame.type === 'note' && frame.data.n === 2)
  assert.deepEqual(notesOf(client.drain()), [])
})

test('resuming while events keep coming loses none and repeats none', async (t) => {
  const { route, connect } = await setup(t)
  const start = await route.publish('room:busy', 'note', { n: 0 })
  const load = { publishing: true }
  let published = 0
  // Bounded below the broker's history, so a slow machine cannot trim what the client resumes from.
  t.after(() => { load.publishing = false })
  const publisher = (async () => {
    while ((load.publishing && published < 900) || published < 200) {
      await route.publish('room:busy', 'note', { n: ++published })
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 20))
  const client = await connect()
  const reply = await client.request('$subscribe', { topic: 'room:busy', since: start.offset, epoch: start.epoch })
  assert.equal(reply.data.recovered, true)
  load.publishing = false
  await publisher
  await client.next((frame) => frame.type === 'note' && frame.data.n === published, 5_000)
  const received = notesOf(client.drain()).concat(published)
  assert.deepEqual(received, Array.from({ length: published }, (_, i) => i + 1))
})

test('one broker subscription per topic for all local connections, released with the last', async (t) => {
  const broker = new CountingBroker()
  const calls = broker.calls
  const { connect } = await setup(t, { broker })
  const clients = [await connect(), await connect(), await connect()]
  for (const client of clients) await client.request('$subscribe', { topic: 'room:shared' })
  assert.deepEqual(calls, ['subscribe room:shared'])
  await clients[0]!.request('$unsubscribe', { topic: 'room:shared' })
  clients[1]!.socket.close()
  await clients[1]!.closed
  assert.deepEqual(calls, ['subscribe room:shared'])
  clients[2]!.socket.close()
  await eventually(() => calls.length === 2, 2_000, 'broker unsubscribe')
  assert.deepEqual(calls, ['subscribe room:shared', 'unsubscribe room:shared'])
})

test('a connection holds at most maxSubscriptionsPerConnection topics', async (t) => {
  const { connect } = await setup(t, { maxSubscriptionsPerConnection: 2 })
  const client = await connect()
  assert.equal((await client.request('$subscribe', { topic: 'room:1' })).type, '$reply')
  assert.equal((await client.request('$subscribe', { topic: 'room:2' })).type, '$reply')
  assert.equal((await client.request('$subscribe', { topic: 'room:2' })).type, '$reply', 'resubscribing counts once')
  const refused = await client.request('$subscribe', { topic: 'room:3' })
  assert.equal(refused.error.code, 'FORBIDDEN')
  assert.match(refused.error.message, /at most 2 topics/)
})

/** Publishes notes numbered `from` to `to`; resolves with the position of the first. */
async function publishNotes (route: ReturnType<typeof declareRoomRoute>, topic: string, from: number, to: number): Promise<TopicPosition> {
  const first = await route.publish(topic, 'note', { n: from })
  for (let n = from + 1; n <= to; n++) await route.publish(topic, 'note', { n })
  return first
}

/** A memory broker whose reads take a while, as a networked broker's do. */
class SlowReadBroker extends MemoryBroker {
  readonly reads: Array<() => void> = []
  override async history (topic: string, since: string) {
    const history = await super.history(topic, since)
    await new Promise<void>((resolve) => this.reads.push(resolve))
    return history
  }
}

test('events published while history is being read arrive after the replay, in order, none twice', async (t) => {
  const broker = new SlowReadBroker()
  const { route, connect } = await setup(t, { broker })
  const start = await publishNotes(route, 'room:h', 0, 3)
  const client = await connect()
  client.send({ type: '$subscribe', id: 'sub', data: { topic: 'room:h', since: start.offset, epoch: start.epoch } })
  await eventually(() => broker.reads.length === 1, 2_000, 'the history read to start')
  // These land while the subscription is still being set up: they must wait for the replay.
  for (let n = 4; n <= 6; n++) await route.publish('room:h', 'note', { n })
  broker.reads.shift()?.()
  const reply = await client.next((frame) => frame.id === 'sub')
  assert.equal(reply.data.recovered, true)
  await route.publish('room:h', 'note', { n: 7 })
  const received: number[] = []
  while (received.at(-1) !== 7) received.push((await client.next((frame) => frame.type === 'note')).data.n)
  assert.deepEqual(received, [1, 2, 3, 4, 5, 6, 7])
})

test('two $subscribe to one topic without waiting: the newer wins and nothing is lost or repeated', async (t) => {
  const broker = new SlowReadBroker()
  const { route, connect } = await setup(t, { broker })
  const start = await publishNotes(route, 'room:d', 0, 3)
  const client = await connect()
  client.send({ type: '$subscribe', id: 'a', data: { topic: 'room:d', since: start.offset, epoch: start.epoch } })
  client.send({ type: '$subscribe', id: 'b', data: { topic: 'room:d', since: start.offset, epoch: start.epoch } })
  await eventually(() => broker.reads.length === 2, 2_000, 'both history reads to start')
  await route.publish('room:d', 'note', { n: 4 })
  broker.reads.shift()?.()
  broker.reads.shift()?.()
  await client.next((frame) => frame.id === 'a')
  assert.equal((await client.next((frame) => frame.id === 'b')).data.recovered, true)
  await route.publish('room:d', 'note', { n: 5 })
  const received: number[] = []
  while (received.at(-1) !== 5) received.push((await client.next((frame) => frame.type === 'note')).data.n)
  assert.deepEqual(received, [1, 2, 3, 4, 5])
})

test('a since beyond the newest offset replays nothing, says recovered: false, and live events still arrive', async (t) => {
  const { route, connect } = await setup(t)
  const latest = await route.publish('room:f', 'note', { n: 1 })
  const client = await connect()
  const reply = await client.request('$subscribe', { topic: 'room:f', since: '99999999999999-0', epoch: latest.epoch })
  assert.deepEqual(reply.data, { topic: 'room:f', offset: latest.offset, epoch: latest.epoch, recovered: false })
  await route.publish('room:f', 'note', { n: 2 })
  assert.equal((await client.next((frame) => frame.type === 'note')).data.n, 2)
})

test('a connection that closes while its $subscribe is being authorized leaves no broker listener behind', async (t) => {
  const broker = new CountingBroker()
  let authorizing!: () => void
  const asked = new Promise<void>((resolve) => { authorizing = resolve })
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', {
      authorizeSubscribe: async () => {
        authorizing()
        await new Promise((resolve) => setTimeout(resolve, 100))
        return true
      }
    })
  }, { broker })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.send({ type: '$subscribe', id: 1, data: { topic: 'room:gone' } })
  await asked
  client.socket.terminate()
  await eventually(() => server.app.realtime.connectionCount === 0, 1_000, 'the connection to close')
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(broker.calls.filter((call) => call === 'subscribe room:gone').length, broker.calls.filter((call) => call === 'unsubscribe room:gone').length)
})

test('entries framed once for every member arrive intact at every payload length, with permessage-deflate on or off', async (t) => {
  // Frames with each of the three header sizes (the exact boundaries are in frame.test.ts).
  const lengths = [1, 40, 126, 5_000, 65_536, 70_000]
  for (const perMessageDeflate of [false, true]) {
    let route!: ReturnType<typeof declareTextRoute>
    const server = await startServer(t, (app) => { route = declareTextRoute(app) }, { perMessageDeflate, maxPayload: 200_000 })
    const members = [await TestClient.connect(t, `${server.wsUrl}/ws`), await TestClient.connect(t, `${server.wsUrl}/ws`)]
    for (const member of members) await member.request('$subscribe', { topic: 'room:sizes' })
    for (const length of lengths) await route.publish('room:sizes', 'text', { text: 'x'.repeat(length) })
    for (const member of members) {
      for (const length of lengths) {
        const frame = await member.next((received) => received.type === 'text')
        assert.equal(frame.data.text.length, length, `deflate ${perMessageDeflate}`)
      }
    }
    // The socket is still in step after the direct writes: a request gets its own reply.
    assert.equal((await members[0]!.request('$ping', {})).type, '$reply')
  }
})

function declareTextRoute (app: FastifyInstance) {
  return app.wsRoute('/ws', {
    events: { text: Type.Object({ text: Type.String() }) },
    authorizeSubscribe: (topic) => topic.startsWith('room:')
  })
}
