import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from 'typebox'
import { TestClient } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { startServer } from '../helpers/server.js'

test('authorizeMessage refuses with FORBIDDEN before the handler runs; protocol commands are not its business', async (t) => {
  const ran: string[] = []
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', {
      authorizeSubscribe: () => true,
      authorizeMessage: async (type, data, connection) => {
        assert.ok(connection.id.length > 0)
        return type !== 'admin' || (data as { key: string }).key === 'open-sesame'
      }
    })
      .message('admin', { data: Type.Object({ key: Type.String() }), reply: Type.String() }, () => { ran.push('admin'); return 'done' })
      .message('public', { reply: Type.String() }, () => { ran.push('public'); return 'ok' })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.deepEqual((await client.request('admin', { key: 'guess' })).error, { code: 'FORBIDDEN', message: 'not allowed to send this message' })
  assert.deepEqual(ran, [], 'the refused handler never ran')
  assert.equal((await client.request('admin', { key: 'open-sesame' })).data, 'done')
  assert.equal((await client.request('public')).data, 'ok')
  assert.equal((await client.request('$subscribe', { topic: 'anything' })).type, '$reply')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_message_errors_total', { route: '/ws', type: 'admin', code: 'FORBIDDEN' }), 1)
})

test('a message type with its own budget is limited on its own; the rest of the route is not', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws')
      .message('typing', { messagesPerSecond: 2 }, () => {})
      .message('echo', { data: Type.String(), reply: Type.String() }, (data) => data)
  }, { messagesPerSecond: 100 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const answers = []
  for (let i = 0; i < 3; i++) answers.push(await client.request('typing'))
  assert.deepEqual(answers.map((frame) => frame.type), ['$reply', '$reply', '$error'])
  assert.equal(answers[2]?.error.code, 'RATE_LIMITED')
  assert.ok(answers[2]?.error.retryAfterMs > 0 && answers[2]?.error.retryAfterMs <= 500)
  for (let i = 0; i < 10; i++) assert.equal((await client.request('echo', 'x')).type, '$reply')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_rate_limited_total', { route: '/ws', scope: 'message' }), 1)
})

test('a message type budget below one per second still lets one message through', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws').message('rare', { messagesPerSecond: 0.5 }, () => {})
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal((await client.request('rare')).type, '$reply')
  const limited = await client.request('rare')
  assert.equal(limited.error.code, 'RATE_LIMITED')
  assert.ok(limited.error.retryAfterMs > 1_000 && limited.error.retryAfterMs <= 2_000)
})
