import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import realtime, { errors, MemoryBroker, type RealtimeOptions } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { eventually, listen, logCollector, type TestServer } from '../helpers/server.js'

const identified: RealtimeOptions = { authenticate: (request) => ({ id: String(request.headers['x-user']) }) }

function declareRoutes (app: FastifyInstance) {
  const inbox = app.wsRoute('/ws', { events: { notice: Type.Object({ text: Type.String() }) } })
  app.wsRoute('/other', { events: { notice: Type.Object({ text: Type.String(), level: Type.Integer() }) } })
  app.wsRoute('/quiet')
  return inbox
}

/** Two nodes on one broker, as two processes on one Redis would be. */
async function twoNodes (t: TestContext) {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  const nodes: Array<TestServer & { inbox: ReturnType<typeof declareRoutes> }> = []
  for (let i = 0; i < 2; i++) {
    const { stream, logs } = logCollector()
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(realtime, { ...identified, broker, drainMs: 50 })
    const inbox = declareRoutes(app)
    nodes.push({ ...(await listen(t, app, logs)), inbox })
  }
  const connect = async (node: TestServer, user: string, path = '/ws'): Promise<TestClient> =>
    await TestClient.connect(t, `${node.wsUrl}${path}`, { headers: { 'x-user': user } })
  return { nodes: nodes as [typeof nodes[0], typeof nodes[0]], connect }
}

const metric = async (node: TestServer, series: string): Promise<string | undefined> =>
  new RegExp(`^${series.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm').exec(await node.app.realtime.metricsRegistry!.metrics())?.[1]

test('disconnectUser, called on one node, closes every connection of that user on every node with its code, and no one else\'s', async (t) => {
  const { nodes: [a, b], connect } = await twoNodes(t)
  const ann = [await connect(a, 'ann'), await connect(a, 'ann', '/quiet'), await connect(b, 'ann')]
  const bob = await connect(a, 'bob')
  assert.deepEqual(await b.app.realtime.disconnectUser('ann', { code: 4501, reason: 'banned' }), { nodes: 2 })
  for (const client of ann) assert.deepEqual(await client.closed, { code: 4501, reason: 'banned' })
  assert.equal(bob.socket.readyState, bob.socket.OPEN)
  assert.equal((await bob.request('$ping')).type, '$reply', 'the others carry on')
  assert.equal(await metric(b, 'ws_user_actions_total{action="disconnect"}'), '1')
  assert.equal(await metric(a, 'ws_user_actions_total{action="disconnect"}'), '0')
  await eventually(() => a.app.realtime.connectionCount === 1, 1_000, 'the closes')
  assert.equal(await metric(a, 'ws_user_action_connections_total{action="disconnect"}'), '2')
  assert.equal(await metric(b, 'ws_user_action_connections_total{action="disconnect"}'), '1')

  // The default says "do not reconnect until the user acts"; a code ws cannot send is refused.
  const again = await connect(b, 'ann')
  await a.app.realtime.disconnectUser('ann')
  assert.deepEqual(await again.closed, { code: 1008, reason: 'disconnected by the server' })
  await assert.rejects(a.app.realtime.disconnectUser('ann', { code: 1006 }), errors.FRT_ERR_INVALID_OPTION)
  await assert.rejects(a.app.realtime.disconnectUser('', {}), errors.FRT_ERR_INVALID_OPTION)
  assert.deepEqual(await a.app.realtime.disconnectUser('nobody'), { nodes: 2 }, 'a user with no connection is no error')
})

test('sendToUser delivers an event to each connection of the user on every node, serialized by the route\'s schema; others hear nothing', async (t) => {
  const { nodes: [a, b], connect } = await twoNodes(t)
  const ann = [await connect(a, 'ann'), await connect(b, 'ann')]
  const annElsewhere = await connect(b, 'ann', '/quiet')
  const bob = await connect(a, 'bob')
  assert.deepEqual(await a.inbox.sendToUser('ann', 'notice', { text: 'hello', secret: 'dropped' } as { text: string }), { nodes: 2 })
  for (const client of ann) assert.deepEqual(await client.next((frame) => frame.type === 'notice'), { type: 'notice', data: { text: 'hello' } })
  // Untyped, through every route declaring the event: each by its own schema.
  const annOther = await connect(a, 'ann', '/other')
  await b.app.realtime.sendToUser('ann', 'notice', { text: 'both routes', level: 2 })
  assert.deepEqual(await annOther.next((frame) => frame.type === 'notice'), { type: 'notice', data: { text: 'both routes', level: 2 } })
  for (const client of ann) assert.deepEqual(await client.next((frame) => frame.type === 'notice'), { type: 'notice', data: { text: 'both routes' } })
  for (const client of [bob, annElsewhere]) assert.deepEqual(client.drain().filter((frame) => frame.type === 'notice'), [])
  await assert.rejects(b.app.realtime.sendToUser('ann', 'nope', {}), errors.FRT_ERR_UNKNOWN_EVENT)
  assert.equal(await metric(a, 'ws_user_action_connections_total{action="send"}'), '3')
})
