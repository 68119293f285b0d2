import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { startApp } from '../helpers/app.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { startRedis } from '../helpers/redis.js'
import { eventually, type TestServer } from '../helpers/server.js'

/** A node with its logs kept, once it has reached Redis. */
async function startNode (t: TestContext, redisUrl: string, env: NodeJS.ProcessEnv = {}): Promise<TestServer> {
  const server = await startApp(t, { LOG_LEVEL: 'info', REDIS_URL: redisUrl, ...env }, { logs: true })
  await eventually(() => server.app.realtime.broker.healthy, 5_000, 'the node to reach Redis')
  return server
}

const scrape = async (httpUrl: string): Promise<string> => await (await fetch(`${httpUrl}/metrics`)).text()

test('example app with REDIS_URL: rooms span nodes; Redis lost → UNAVAILABLE, echo unaffected, metrics and logs say so; Redis back → all recovers', async (t) => {
  const redis = await startRedis(t)
  const nodeA = await startNode(t, redis.url)
  // fastify-metrics keeps one registry per process: the node started last serves it.
  const nodeB = await startNode(t, redis.url)
  const bob = await TestClient.connect(t, `${nodeA.wsUrl}/ws`)
  const alice = await TestClient.connect(t, `${nodeB.wsUrl}/ws`)
  await alice.request('$subscribe', { topic: 'room:span' })
  await bob.request('say', { room: 'span', text: 'from node A' })
  const crossed = await alice.next((frame) => frame.type === 'message')
  assert.equal(crossed.data.text, 'from node A')
  const metricsUp = await scrape(nodeB.httpUrl)
  assert.match(metricsUp, /^ws_broker_up\{broker="redis"\} 1$/m)
  assert.match(metricsUp, /^ws_broker_delivery_seconds_count\{broker="redis"\} 1$/m)

  await redis.stop('SIGKILL')
  await eventually(() => !nodeB.app.realtime.broker.healthy, 3_000, 'node B to notice')
  const refused = await alice.request('say', { room: 'span', text: 'while Redis is down' })
  assert.equal(refused.error.code, 'UNAVAILABLE')
  assert.ok(refused.error.retryAfterMs > 0)
  assert.deepEqual((await alice.request('echo', { text: 'still here' })).data, { text: 'still here' }, 'local work goes on')
  const metricsDown = await scrape(nodeB.httpUrl)
  assert.match(metricsDown, /^ws_broker_up\{broker="redis"\} 0$/m)
  assert.match(metricsDown, /^ws_broker_publish_total\{broker="redis",outcome="error"\} 1$/m)
  assert.match(metricsDown, /^ws_message_errors_total\{route="\/ws",type="say",code="UNAVAILABLE"\} 1$/m)
  assert.ok(nodeB.logs.some((line) => line.msg === 'broker.disconnected' && line.component === 'broker'))
  assert.ok(nodeB.logs.some((line) => line.msg === 'ws.broker_unavailable'))

  await redis.start()
  await eventually(() => nodeA.app.realtime.broker.healthy && nodeB.app.realtime.broker.healthy, 5_000, 'both nodes to reconnect')
  assert.ok(nodeB.logs.some((line) => line.msg === 'broker.reconnected'))
  const accepted = await bob.request('say', { room: 'span', text: 'Redis is back' })
  assert.ok(accepted.data.offset !== undefined)
  const after = await alice.next((frame) => frame.type === 'message' && frame.data.text === 'Redis is back')
  assert.equal(after.offset, accepted.data.offset, 'node B subscribed again by itself')
  assert.match(await scrape(nodeB.httpUrl), /^ws_broker_up\{broker="redis"\} 1$/m)
})

test('example app with REDIS_URL: the upgrade rate limit counts across nodes, and lets upgrades through while Redis is down', async (t) => {
  const redis = await startRedis(t)
  const env = { WS_UPGRADE_RATE_LIMIT: '3' }
  const nodeA = await startNode(t, redis.url, env)
  const nodeB = await startNode(t, redis.url, env)
  const statuses = []
  for (const node of [nodeA, nodeB, nodeA, nodeB]) statuses.push((await upgradeStatus(`${node.wsUrl}/ws`)).status)
  assert.deepEqual(statuses, [101, 101, 101, 429], 'three upgrades per IP per minute across both nodes')
  await redis.stop('SIGKILL')
  assert.equal((await upgradeStatus(`${nodeA.wsUrl}/ws`)).status, 101, 'the limiter fails open without Redis')
})
