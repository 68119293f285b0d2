import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from 'typebox'
import { TestClient } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

test('a peer that never reads while its room floods is cut off; server buffers stay bounded; others get everything', async (t) => {
  const maxBufferedBytes = 256 * 1024
  let route!: { publish: (topic: string, event: 'note', data: { text: string }) => Promise<unknown> }
  const server = await startServer(t, (app) => {
    route = app.wsRoute('/ws', { events: { note: Type.Object({ text: Type.String() }) }, authorizeSubscribe: () => true })
  }, { maxBufferedBytes })
  const registry = server.app.realtime.metricsRegistry
  const stalled = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const reader = await TestClient.connect(t, `${server.wsUrl}/ws`)
  let delivered = 0
  reader.socket.on('message', (data) => { if ((JSON.parse(data.toString()) as { type: string }).type === 'note') delivered++ })
  await stalled.request('$subscribe', { topic: 'flood' })
  await reader.request('$subscribe', { topic: 'flood' })
  stalled.socket.pause()

  const text = 'x'.repeat(16 * 1024)
  const batches = 250
  const perBatch = 8
  let maxBuffered = 0
  for (let batch = 0; batch < batches; batch++) {
    for (let i = 0; i < perBatch; i++) await route.publish('flood', 'note', { text })
    maxBuffered = Math.max(maxBuffered, await metricValue(registry, 'ws_buffered_bytes', { route: '/ws' }))
    // The reader keeps up, as a healthy client does; the stalled one reads nothing.
    await eventually(() => delivered >= (batch + 1) * perBatch, 5_000, 'the reader to keep up')
  }
  const publishedBytes = batches * perBatch * text.length
  assert.ok(maxBuffered < 2 * maxBufferedBytes, `buffered at most ${maxBuffered} bytes while ${publishedBytes} were published`)
  assert.equal(delivered, batches * perBatch, 'the reader received every event')
  await eventually(() => server.app.realtime.connectionCount === 1, 3_000, 'the stalled peer to be dropped')
  assert.equal(await metricValue(registry, 'ws_slow_consumer_closes_total', { route: '/ws' }), 1)
  assert.equal(await metricValue(registry, 'ws_disconnections_total', { route: '/ws', code: '4001' }), 1)
  assert.ok(server.logs.some((line) => line.msg === 'ws.slow_consumer' && line.connectionId === stalled.welcome?.data.connectionId))
  assert.deepEqual((await reader.request('$unsubscribe', { topic: 'flood' })).data, { topic: 'flood' }, 'the reader is unaffected')
})
