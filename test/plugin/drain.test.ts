import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type } from 'typebox'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

test('drain: 20 clients closed with 1012 spread over drainMs, in-flight replies delivered, stragglers terminated', async (t) => {
  let slowHandlerStarted!: () => void
  const slowHandlerRunning = new Promise<void>((resolve) => { slowHandlerStarted = resolve })
  let releaseSlowHandler!: () => void
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws')
      .message('slow', { reply: Type.String() }, async () => {
        slowHandlerStarted()
        await new Promise<void>((resolve) => { releaseSlowHandler = resolve })
        return 'finished'
      })
  }, { drainMs: 1_000 })
  const clients = await Promise.all(Array.from({ length: 20 }, async () => await TestClient.connect(t, `${server.wsUrl}/ws`)))
  const closedAt = new Map<TestClient, number>()
  for (const client of clients) client.closed.then(() => closedAt.set(client, Date.now()), () => {})
  // One client has a handler running when the drain starts; another never answers the close.
  const busy = clients[0]!
  const slowReply = busy.request('slow')
  await slowHandlerRunning
  const stuck = await TestClient.connect(t, `${server.wsUrl}/ws`)
  stuck.socket.pause()

  const startedAt = Date.now()
  const draining = server.app.realtime.drain()
  const ready = await fetch(`${server.httpUrl}/health/ready`)
  assert.equal(ready.status, 503)
  assert.equal(ready.headers.get('retry-after'), '5')
  const upgrade = await upgradeStatus(`${server.wsUrl}/ws`)
  assert.equal(upgrade.status, 503)
  assert.equal(upgrade.headers['retry-after'], '5')
  assert.equal(server.app.realtime.accepting, false)

  setTimeout(() => releaseSlowHandler(), 100)
  assert.deepEqual(await slowReply, { type: '$reply', id: 1, data: 'finished' }, 'the in-flight reply got out before the close')
  for (const client of clients) assert.deepEqual(await client.closed, { code: 1012, reason: 'server restarting' })
  await draining
  const elapsed = Date.now() - startedAt
  assert.ok(elapsed >= 900 && elapsed < 3_000, `the drain waited for the straggler until drainMs, took ${elapsed} ms`)
  // The straggler's close frame sat unread in its buffer; the server did not wait for it.
  stuck.socket.resume()
  await stuck.closed
  await eventually(() => server.app.realtime.connectionCount === 0, 1_000, 'every connection gone')

  const times = [...closedAt.values()].sort((a, b) => a - b)
  assert.ok(times.at(-1)! - times[0]! >= 100, `closes were spread out, not one burst (${times.at(-1)! - times[0]!} ms)`)
  assert.ok(times.at(-1)! - startedAt <= 800, 'every close was sent within the first half of drainMs, plus margin')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '1012' }), 21, 'the straggler too was closed with 1012 before it was terminated')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_connections_rejected_total', { route: '/ws', reason: 'draining' }), 1)
  assert.ok(server.logs.some((line) => line.msg === 'ws.drain_finished' && line.terminated === 1))
})

test('app.close() drains too when nobody drained first', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { drainMs: 200 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await server.app.close()
  assert.equal((await client.closed).code, 1012)
  await eventually(() => server.app.realtime.connectionCount === 0, 1_000, 'every connection gone')
})

test('app.close() completes while clients keep reconnecting: upgrades during the close get 503 with Retry-After', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { drainMs: 300 })
  await TestClient.connect(t, `${server.wsUrl}/ws`)
  let stop = false
  const statuses: number[] = []
  // A client hammering the node while it shuts down, as a reconnect loop with no backoff would.
  const hammer = (async () => {
    // eslint-disable-next-line no-unmodified-loop-condition -- set by the test once app.close() returns
    while (!stop) {
      try {
        const { status, headers } = await upgradeStatus(`${server.wsUrl}/ws`)
        statuses.push(status)
        if (status === 503) assert.ok(headers['retry-after'] !== undefined, 'a refusal says when to come back')
      } catch {
        // Refused at the TCP level once the server stopped listening.
      }
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 20))
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      server.app.close(),
      new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('app.close() did not complete within 5 s')), 5_000) })
    ])
  } finally {
    clearTimeout(timer)
    stop = true
    await hammer
  }
  assert.ok(statuses.filter((status) => status === 503).length > 0, 'upgrades during the drain were refused, not left hanging')
  assert.ok(statuses.every((status) => status === 101 || status === 503))
})
