import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import { Type } from 'typebox'
import realtime from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { eventually, listen, logCollector } from '../helpers/server.js'

// A client that leaves while its $subscribe is being set up is a reconnect storm's everyday
// case: a quiet outcome, never a server error that the shipped alert would page on.

test('a $subscribe whose connection closes mid-setup ends as "abandoned": a debug line, no HANDLER_ERROR in /metrics', async (t) => {
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'debug', stream } })
  await app.register(fastifyMetrics.default, { endpoint: '/metrics', clearRegisterOnInit: true })
  await app.register(realtime, { drainMs: 50 })
  let authorized = 0
  app.wsRoute('/ws', {
    events: { note: Type.Object({ text: Type.String() }) },
    // Slow enough that the client is gone before the subscription is made.
    authorizeSubscribe: async () => {
      await new Promise((resolve) => setTimeout(resolve, 100))
      authorized++
      return true
    }
  })
  const server = await listen(t, app, logs)
  const leaving = await TestClient.connect(t, `${server.wsUrl}/ws`)
  leaving.send({ type: '$subscribe', id: 1, data: { topic: 'room:a' } })
  await new Promise((resolve) => setTimeout(resolve, 20))
  leaving.socket.close()
  await eventually(() => authorized === 1 && logs.some((line) => line.msg === 'ws.message' && line.type === '$subscribe'), 3_000, 'the abandoned $subscribe to settle')

  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
  assert.doesNotMatch(metrics, /ws_message_errors_total\{[^}]*code="HANDLER_ERROR"/)
  assert.match(metrics, /ws_message_duration_seconds_count\{route="\/ws",type="\$subscribe",outcome="abandoned"\} 1/)
  assert.ok(!logs.some((line) => line.msg === 'ws.handler_error'), 'no handler error logged')
  const abandoned = logs.filter((line) => line.msg === 'ws.message_abandoned')
  assert.deepEqual(abandoned.map((line) => [line.level, line.type]), [[20, '$subscribe']])

  // The topic holds no member for the departed client; a client that stays subscribes as usual.
  const staying = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const reply = await staying.request('$subscribe', { topic: 'room:a' })
  assert.equal(reply.type, '$reply')
  assert.equal(reply.data.topic, 'room:a')
})
