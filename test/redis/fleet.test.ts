import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime, { BrokerUnavailableError } from '../../plugin/index.js'
import { RedisBroker } from '../../plugin/broker/redis.js'
import { TestClient } from '../helpers/client.js'
import { startRedis } from '../helpers/redis.js'
import { eventually, listen, logCollector } from '../helpers/server.js'

async function startNode (t: TestContext, url: string) {
  const broker = new RedisBroker({ url, keyPrefix: 'fleet:', commandTimeoutMs: 500 })
  t.after(() => broker.close())
  await eventually(() => broker.healthy, 5_000, 'the broker to connect')
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(realtime, { broker, drainMs: 50, authenticate: (request) => ({ id: String(request.headers['x-user']) }) })
  const inbox = app.wsRoute('/ws', { events: { notice: Type.Object({ text: Type.String() }) } })
  const server = await listen(t, app, logs)
  const connect = async (user: string): Promise<TestClient> => await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': user } })
  return { app, broker, inbox, connect }
}

test('user actions with Redis: one node reaches the user\'s connections on every node; Redis restarted, they work again; Redis down, they fail as unavailable', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = [await startNode(t, redis.url), await startNode(t, redis.url)]
  const ann = [await a.connect('ann'), await b.connect('ann')]
  assert.deepEqual(await a.inbox.sendToUser('ann', 'notice', { text: 'one' }), { nodes: 2 }, 'PUBLISH reached both nodes')
  for (const client of ann) assert.deepEqual((await client.next((frame) => frame.type === 'notice')).data, { text: 'one' })

  await redis.stop('SIGKILL')
  await eventually(() => !a.broker.healthy, 5_000, 'the node to notice')
  await assert.rejects(a.app.realtime.disconnectUser('ann'), BrokerUnavailableError)
  await redis.start()
  await eventually(() => a.broker.healthy && b.broker.healthy, 10_000, 'both nodes to reconnect')
  // The fleet channel is subscribed again with the reconnection.
  let told = 0
  for (const deadline = Date.now() + 5_000; told < 2 && Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 50))) {
    told = (await b.inbox.sendToUser('ann', 'notice', { text: 'probe' })).nodes
  }
  assert.equal(told, 2, 'both nodes listen again')
  assert.deepEqual(await b.app.realtime.disconnectUser('ann', { code: 4600, reason: 'logged out' }), { nodes: 2 })
  for (const client of ann) assert.deepEqual(await client.closed, { code: 4600, reason: 'logged out' })
})
