import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from 'typebox'
import { WebSocket } from 'ws'
import { BrokerUnavailableError, MemoryBroker, type TopicPosition } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { startServer } from '../helpers/server.js'

const identified = { authenticate: (request: { headers: Record<string, unknown> }) => ({ id: String(request.headers['x-user']) }) }

test('server-side subscriptions: made on open, listed in $welcome with their offsets, delivered, resumable, and never left or refused', async (t) => {
  let route!: ReturnType<typeof declare>
  const declare = (app: Parameters<Parameters<typeof startServer>[1]>[0]) => app.wsRoute('/ws', {
    events: { note: Type.Object({ n: Type.Integer() }) },
    authorizeSubscribe: () => false,
    subscriptions: (connection) => [`user:${String(connection.identity?.id)}`, 'news', 'news']
  })
  const server = await startServer(t, (app) => { route = declare(app) }, identified)
  const before = await route.publish('news', 'note', { n: 0 })
  const ann = await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': 'ann' } })
  const bob = await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': 'bob' } })
  const listed = ann.welcome!.data.subscriptions as Array<{ topic: string, offset: string, epoch: string }>
  assert.deepEqual(listed.map(({ topic, offset }) => ({ topic, offset })), [{ topic: 'user:ann', offset: '0-0' }, { topic: 'news', offset: before.offset }], 'each once, where it stood')
  assert.ok(listed.every(({ epoch }) => epoch === before.epoch))

  const [mine, news] = [await route.publish('user:ann', 'note', { n: 1 }), await route.publish('news', 'note', { n: 2 })]
  assert.deepEqual(await ann.next((frame) => frame.topic === 'user:ann'), { type: 'note', topic: 'user:ann', offset: mine.offset, data: { n: 1 } })
  assert.deepEqual((await ann.next((frame) => frame.topic === 'news')).data, { n: 2 })
  assert.deepEqual((await bob.next((frame) => frame.topic === 'news')).data, { n: 2 })
  assert.deepEqual(bob.drain().filter((frame) => frame.topic === 'user:ann'), [], 'a personal topic is its user\'s alone')

  // A resume from an offset is a $subscribe the route's policy would refuse: allowed for these.
  const resumed = await ann.request('$subscribe', { topic: 'news', since: before.offset, epoch: before.epoch })
  assert.equal(resumed.type, '$reply')
  assert.equal(resumed.data.recovered, true)
  assert.deepEqual((await ann.next((frame) => frame.topic === 'news')).offset, news.offset, 'the gap replayed')
  assert.equal((await ann.request('$unsubscribe', { topic: 'user:ann' })).error.code, 'FORBIDDEN')
  assert.equal((await ann.request('$subscribe', { topic: 'user:bob' })).error.code, 'FORBIDDEN')
})

/** A memory broker whose subscriptions fail while `down` is set. */
class DownBroker extends MemoryBroker {
  down = false
  override async position (topic: string): Promise<TopicPosition> {
    if (this.down) throw new BrokerUnavailableError('down')
    return await super.position(topic)
  }
}

test('server-side subscriptions that cannot be made (the broker is down, the function throws) close with 1011; others are not touched', async (t) => {
  const broker = new DownBroker()
  t.after(() => broker.close())
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', {
      subscriptions: (connection) => {
        if (connection.identity?.id === 'broken') throw new Error('no topics for you')
        return [`user:${String(connection.identity?.id)}`]
      }
    })
  }, { ...identified, broker })
  const fine = await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': 'fine' } })
  const broken = new WebSocket(`${server.wsUrl}/ws`, ['realtime.v1'], { headers: { 'x-user': 'broken' } })
  t.after(() => broken.terminate())
  const [code] = await new Promise<[number]>((resolve) => broken.once('close', (closeCode) => resolve([closeCode])))
  assert.equal(code, 1011)
  broker.down = true
  const unlucky = new WebSocket(`${server.wsUrl}/ws`, ['realtime.v1'], { headers: { 'x-user': 'unlucky' } })
  t.after(() => unlucky.terminate())
  const [downCode] = await new Promise<[number]>((resolve) => unlucky.once('close', (closeCode) => resolve([closeCode])))
  assert.equal(downCode, 1011)
  assert.equal(server.logs.filter((line) => line.msg === 'ws.server_subscriptions_failed' && line.level === 50).length, 2)
  assert.equal((await fine.request('$ping')).type, '$reply', 'the others carry on')
})
