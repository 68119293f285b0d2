import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TestClient } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

test('idle timeout: no message for idleTimeoutMs closes with 4000; pongs do not count, messages do', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws').message('ping', {}, () => {})
  }, { idleTimeoutMs: 300, heartbeatMs: 50 })
  const idle = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const active = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const keepAlive = setInterval(() => active.send({ type: 'ping' }), 100)
  t.after(() => clearInterval(keepAlive))
  const startedAt = Date.now()
  assert.deepEqual(await idle.closed, { code: 4000, reason: 'idle timeout' })
  const elapsed = Date.now() - startedAt
  assert.ok(elapsed >= 250 && elapsed < 1_000, `closed after ${elapsed} ms`)
  await new Promise((resolve) => setTimeout(resolve, 400))
  assert.equal(active.socket.readyState, active.socket.OPEN, 'a connection that keeps sending stays open')
  await eventually(() => server.app.realtime.connectionCount === 1, 1_000, 'the idle one to be gone')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '4000' }), 1)
  assert.ok(server.logs.some((line) => line.msg === 'ws.idle_timeout' && line.connectionId === idle.welcome?.data.connectionId))
})

test('heartbeat and idle checks run from one timer, whatever the number of connections', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { idleTimeoutMs: 10_000, heartbeatMs: 10_000 })
  const before = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  await Promise.all(Array.from({ length: 50 }, async () => await TestClient.connect(t, `${server.wsUrl}/ws`)))
  const after = process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length
  assert.ok(after - before <= 1, `timers grew by ${after - before} for 50 connections`)
})
