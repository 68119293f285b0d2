import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import realtime from '../plugin/index.js'
import { TestClient } from './helpers/client.js'
import { listen, logCollector } from './helpers/server.js'

test('closing the app turns readiness off, closes connections with 1001 and finishes', async (t) => {
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { stream } })
  await app.register(realtime)
  app.wsRoute('/ws')
  const server = await listen(t, app, logs)
  assert.deepEqual(await (await fetch(`${server.httpUrl}/health/ready`)).json(), { status: 'ready' })
  assert.equal((await fetch(`${server.httpUrl}/health/live`)).status, 200)
  const clients = [await TestClient.connect(t, `${server.wsUrl}/ws`), await TestClient.connect(t, `${server.wsUrl}/ws`)]
  // A peer that never reads its close frame must not hold the shutdown up.
  const stuck = await TestClient.connect(t, `${server.wsUrl}/ws`)
  stuck.socket.pause()

  const closing = app.close()
  for (const client of clients) assert.deepEqual(await client.closed, { code: 1001, reason: 'server shutting down' })
  const started = Date.now()
  await closing
  assert.ok(Date.now() - started < 3_000, 'close did not wait on the stuck peer for long')
  assert.equal(app.realtime.accepting, false)
  assert.equal(app.realtime.connectionCount, 0)
  assert.equal(logs.filter((line) => line.msg === 'ws.close').length, 3)
})

test('while closing, readiness answers 503 so a load balancer stops sending clients', async (t) => {
  const app = Fastify()
  await app.register(realtime)
  app.wsRoute('/ws')
  const server = await listen(t, app)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  // A peer that does not read keeps the close in progress while we ask.
  client.socket.pause()
  const closing = app.close()
  const ready = await fetch(`${server.httpUrl}/health/ready`)
  assert.equal(ready.status, 503)
  await closing
})
