import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TestClient } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

test('heartbeat: a peer that answers pings stays, one that stops answering is terminated', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { heartbeatMs: 50 })
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  // Counted from the start: the sweep that terminates the silent peer may be the one that pings.
  let pings = 0
  healthy.socket.on('ping', () => { pings++ })
  const silent = await TestClient.connect(t, `${server.wsUrl}/ws`, { autoPong: false })
  const closed = await silent.closed
  // Terminated, not closed: the server sends no close frame to a peer it considers dead.
  assert.equal(closed.code, 1006)
  // The ping and the silent peer's close arrive on different sockets, in either order.
  await eventually(() => pings >= 1, 2_000, 'the healthy peer to be pinged')
  assert.equal(healthy.socket.readyState, healthy.socket.OPEN)
  await eventually(() => server.app.realtime.connectionCount === 1, 2_000, 'the dead peer to be dropped')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '1006' }), 1)
  assert.ok(server.logs.some((line) => line.msg === 'ws.heartbeat_timeout' && line.connectionId === silent.welcome?.data.connectionId))
})

test('heartbeat: 0 disables pings', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { heartbeatMs: 0 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`, { autoPong: false })
  let pinged = false
  client.socket.on('ping', () => { pinged = true })
  await new Promise((resolve) => setTimeout(resolve, 150))
  assert.equal(pinged, false)
  assert.equal(client.welcome?.data.heartbeatMs, 0)
  assert.equal(client.socket.readyState, client.socket.OPEN)
})
