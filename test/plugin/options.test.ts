import assert from 'node:assert/strict'
import { test } from 'node:test'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime, { type RealtimeOptions } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { startServer } from '../helpers/server.js'

test('bad plugin options are refused at register time with a message naming the value', async () => {
  const bad: Array<[RealtimeOptions, RegExp]> = [
    [{ maxPayload: 0 }, /maxPayload is invalid: expected an integer >= 1, got 0/],
    [{ heartbeatMs: -5 }, /heartbeatMs/],
    [{ messagesPerSecond: Number.NaN }, /messagesPerSecond/],
    [{ maxNestingDepth: 2.5 }, /maxNestingDepth/],
    [{ maxSubscriptionsPerConnection: -1 }, /maxSubscriptionsPerConnection/],
    [{ presenceWindowMs: 0 }, /presenceWindowMs/],
    [{ perMessageDeflate: 'yes' as unknown as boolean }, /perMessageDeflate/],
    [{ headersTimeoutMs: -1 }, /headersTimeoutMs is invalid: expected an integer >= 0, got -1/],
    [{ headersTimeoutMs: 1.5 }, /headersTimeoutMs/],
    [{ headersTimeoutMs: '100' as unknown as number }, /headersTimeoutMs/],
    [{ maxSockets: -1 }, /maxSockets is invalid: expected an integer >= 0, got -1/],
    [{ maxSockets: Number.NaN }, /maxSockets/],
    [{ maxSockets: null as unknown as number }, /maxSockets/],
    [{ maxFragments: 0 }, /maxFragments is invalid: expected an integer >= 1, got 0/],
    [{ incompleteMessageTimeoutMs: -1 }, /incompleteMessageTimeoutMs/],
    [{ identityMessagesPerSecond: -1 }, /identityMessagesPerSecond/],
    [{ addressMessagesPerSecond: Number.POSITIVE_INFINITY }, /addressMessagesPerSecond/],
    [{ traceSampleRatio: 1.5 }, /traceSampleRatio is invalid: expected a number from 0 to 1, got 1.5/],
    [{ traceSampleRatio: Number.NaN }, /traceSampleRatio/]
  ]
  for (const [options, message] of bad) {
    const app = Fastify()
    await assert.rejects(async () => { await app.register(realtime, options).ready() }, (err: Error & { code: string }) => {
      assert.equal(err.code, 'FRT_ERR_INVALID_OPTION')
      assert.match(err.message, message)
      return true
    })
    await app.close()
  }
})

test('registering @fastify/websocket as well is refused with what to do', async () => {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  await assert.rejects(async () => { await app.register(realtime).ready() }, /already registered: fastify-realtime registers it itself/)
  await app.close()
})

test('declaration mistakes are reported when they are made', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(realtime)
  const route = app.wsRoute('/ws', { events: { note: Type.Object({ n: Type.Number() }) } })
  route.message('ping', {}, () => {})
  assert.throws(() => route.message('ping', {}, () => {}), { code: 'FRT_ERR_DUPLICATE_MESSAGE' })
  assert.throws(() => route.message('$ping', {}, () => {}), { code: 'FRT_ERR_INVALID_NAME' })
  assert.throws(() => route.message('has space', {}, () => {}), { code: 'FRT_ERR_INVALID_NAME' })
  assert.throws(() => app.wsRoute('/bad', { events: { 'a"b': Type.Object({}) } }), { code: 'FRT_ERR_INVALID_NAME' })
  assert.throws(() => app.wsRoute('/bin', { binary: 'maybe' as 'error' }), { code: 'FRT_ERR_INVALID_OPTION' })
  await assert.rejects(route.publish('t', 'other' as 'note', { n: 1 }), { code: 'FRT_ERR_UNKNOWN_EVENT' })
  await assert.rejects(route.publish('', 'note', { n: 1 }), { code: 'FRT_ERR_INVALID_TOPIC' })
  await app.ready()
  assert.throws(() => route.message('late', {}, () => {}), { code: 'FRT_ERR_ROUTE_READY' })
})

test('routes declared in an encapsulated context get its prefix and its hooks', async (t) => {
  let hookRan = false
  const server = await startServer(t, async (app) => {
    await app.register(async (child) => {
      child.addHook('onRequest', async () => { hookRan = true })
      child.wsRoute('/ws').message('where', { reply: Type.String() }, (_data, { connection }) => connection.route)
    }, { prefix: '/v1' })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/v1/ws`)
  assert.deepEqual(await client.request('where'), { type: '$reply', id: 1, data: '/v1/ws' })
  assert.equal(hookRan, true)
})

test('a route may set its own message budget', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/slow', { messagesPerSecond: 1 }).message('hit', {}, () => {})
  }, { messagesPerSecond: 100 })
  const client = await TestClient.connect(t, `${server.wsUrl}/slow`)
  assert.equal(client.welcome?.data.limits.messagesPerSecond, 1)
  assert.equal((await client.request('hit')).type, '$reply')
  assert.equal((await client.request('hit')).error.code, 'RATE_LIMITED')
})
