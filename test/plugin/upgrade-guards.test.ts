import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime, { type RealtimeOptions } from '../../plugin/index.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, listen, logCollector, startServer } from '../helpers/server.js'

const echoRoute = (app: Parameters<Parameters<typeof startServer>[1]>[0]): void => {
  app.wsRoute('/ws').message('echo', { data: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) }, (data) => data)
}

async function assertEchoes (client: TestClient): Promise<void> {
  assert.deepEqual((await client.request('echo', { text: 'still here' })).data, { text: 'still here' })
}

test('maxConnections: upgrades past the cap get 503 with Retry-After; a freed slot admits again', async (t) => {
  const server = await startServer(t, echoRoute, { maxConnections: 2 })
  const first = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await TestClient.connect(t, `${server.wsUrl}/ws`)
  const refused = await upgradeStatus(`${server.wsUrl}/ws`)
  assert.equal(refused.status, 503)
  assert.equal(refused.headers['retry-after'], '5')
  assert.equal(refused.headers.connection, 'close')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_connections_rejected_total', { route: '/ws', reason: 'capacity' }), 1)
  assert.ok(server.logs.some((line) => line.msg === 'ws.rejected' && line.reason === 'capacity'))
  await assertEchoes(first)
  first.socket.close()
  await first.closed
  const again = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await assertEchoes(again)
})

test('maxConnections holds under a burst of concurrent upgrades', async (t) => {
  const server = await startServer(t, echoRoute, { maxConnections: 10 })
  const attempts = await Promise.allSettled(Array.from({ length: 40 }, async () => await TestClient.connect(t, `${server.wsUrl}/ws`)))
  assert.equal(attempts.filter((attempt) => attempt.status === 'fulfilled').length, 10)
  const refusals = attempts.filter((attempt): attempt is PromiseRejectedResult => attempt.status === 'rejected')
  assert.equal(refusals.length, 30)
  assert.ok(refusals.every((attempt) => /503/.test(String(attempt.reason))))
  assert.equal(server.app.realtime.connectionCount, 10)
})

test('Origin: Origin-less clients and loopback same-origin pages by default; an allow-list is exact; others get 403', async (t) => {
  const server = await startServer(t, echoRoute)
  const host = new URL(server.httpUrl).host
  const port = new URL(server.httpUrl).port
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { origin: `http://${host}` })).status, 101)
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { origin: `http://localhost:${port}`, host: `localhost:${port}` })).status, 101)
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`)).status, 101)
  const foreign = await upgradeStatus(`${server.wsUrl}/ws`, { origin: 'https://evil.example' })
  assert.equal(foreign.status, 403)
  // DNS rebinding: the attacker's name now points here, so Host and Origin agree. Not trusted.
  const rebound = await upgradeStatus(`${server.wsUrl}/ws`, { origin: 'http://evil.example', host: 'evil.example' })
  assert.equal(rebound.status, 403)
  // Nor is a public name of this server's own until it is listed: the log says what to set.
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { origin: 'https://chat.example.com', host: 'chat.example.com' })).status, 403)
  const hints = server.logs.filter((line) => line.msg === 'ws.origin_not_configured').map((line) => [line.origin, line.level])
  assert.deepEqual(hints, [['http://evil.example', 40], ['https://chat.example.com', 40]])
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_connections_rejected_total', { reason: 'origin' }), 3)

  const listed = await startServer(t, echoRoute, { allowedOrigins: ['https://app.example'] })
  assert.equal((await upgradeStatus(`${listed.wsUrl}/ws`, { origin: 'https://app.example' })).status, 101)
  assert.equal((await upgradeStatus(`${listed.wsUrl}/ws`, { origin: 'https://app.example.evil' })).status, 403)
  assert.equal((await upgradeStatus(`${listed.wsUrl}/ws`, { origin: `http://${new URL(listed.httpUrl).host}` })).status, 403, 'with a list, same-origin is not implied')
  assert.equal((await upgradeStatus(`${listed.wsUrl}/ws`)).status, 101, 'Origin-less clients (servers, CLIs) are allowed')
  const listedPublic = await startServer(t, echoRoute, { allowedOrigins: ['https://chat.example.com'] })
  assert.equal((await upgradeStatus(`${listedPublic.wsUrl}/ws`, { origin: 'https://chat.example.com', host: 'chat.example.com' })).status, 101)
})

test('authenticate: token from header, bearer subprotocol or query; 401 otherwise; identity on the connection', async (t) => {
  const seen: Array<string | undefined> = []
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws').message('whoami', { reply: Type.String() }, (_data, { connection }) => connection.identity?.id ?? 'nobody')
  }, {
    authenticate: async (_request, token) => {
      seen.push(token)
      if (token === 'boom') throw new Error('verifier exploded')
      return token === 'good-token' ? { id: 'alice' } : undefined
    }
  })
  const url = `${server.wsUrl}/ws`
  const viaHeader = await TestClient.connect(t, url, { headers: { authorization: 'Bearer good-token' } })
  assert.equal((await viaHeader.request('whoami')).data, 'alice')
  const viaProtocol = await TestClient.connect(t, url, { protocols: ['realtime.v1', 'bearer.good-token'] })
  assert.equal(viaProtocol.socket.protocol, 'realtime.v1', 'the token is never echoed as the chosen protocol')
  assert.equal((await viaProtocol.request('whoami')).data, 'alice')
  const viaQuery = await TestClient.connect(t, `${url}?token=good-token`)
  assert.equal((await viaQuery.request('whoami')).data, 'alice')

  const refusedHeaders: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer boom' }, { authorization: 'Basic Z29vZC10b2tlbg==' }]
  for (const headers of refusedHeaders) {
    const refused = await upgradeStatus(url, headers)
    assert.equal(refused.status, 401, JSON.stringify(headers))
    assert.equal(refused.headers['www-authenticate'], 'Bearer')
  }
  assert.deepEqual(seen, ['good-token', 'good-token', 'good-token', undefined, 'wrong', 'boom', undefined])
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_connections_rejected_total', { reason: 'unauthorized' }), 4)
  const pluginLines = server.logs.filter((line) => String(line.msg).startsWith('ws.'))
  assert.ok(pluginLines.length > 0)
  assert.ok(!JSON.stringify(pluginLines).includes('good-token'), 'the plugin never logs a token')
  assert.equal((await viaHeader.request('whoami')).data, 'alice', 'refusals did not disturb open connections')
})

test('credentials that expire during the session close the connection with 4003', async (t) => {
  const server = await startServer(t, echoRoute, {
    authenticate: () => ({ id: 'bob', expiresAt: Date.now() + 300 })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await assertEchoes(client)
  const startedAt = Date.now()
  assert.deepEqual(await client.closed, { code: 4003, reason: 'credentials expired' })
  assert.ok(Date.now() - startedAt < 2_000)
  await eventually(() => server.app.realtime.connectionCount === 0, 1_000, 'the connection to be gone')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { code: '4003' }), 1)
})

test('upgradeRateLimit: per client IP per minute, 429 with Retry-After; trustProxy decides the IP', async (t) => {
  const direct = await startServer(t, echoRoute, { upgradeRateLimit: 3 })
  const healthy = await TestClient.connect(t, `${direct.wsUrl}/ws`)
  for (let i = 0; i < 2; i++) assert.equal((await upgradeStatus(`${direct.wsUrl}/ws`)).status, 101)
  const limited = await upgradeStatus(`${direct.wsUrl}/ws`, { 'x-forwarded-for': '203.0.113.9' })
  assert.equal(limited.status, 429, 'without trustProxy, X-Forwarded-For does not make a new client')
  assert.ok(Number(limited.headers['retry-after']) > 0)
  assert.equal(limited.headers.connection, 'close')
  assert.equal(await metricValue(direct.app.realtime.metricsRegistry, 'ws_rate_limited_total', { route: '/ws', scope: 'upgrade' }), 1)
  assert.equal(await metricValue(direct.app.realtime.metricsRegistry, 'ws_connections_rejected_total', { reason: 'rate_limited' }), 1)
  assert.ok(direct.logs.some((line) => line.msg === 'ws.rejected' && line.reason === 'rate_limited'))
  await assertEchoes(healthy)
  assert.equal((await fetch(`${direct.httpUrl}/health/ready`)).status, 200, 'other routes are not limited')

  const { stream, logs } = logCollector()
  const proxied = Fastify({ trustProxy: true, logger: { stream } })
  await proxied.register(realtime, { upgradeRateLimit: 1, drainMs: 50 } satisfies RealtimeOptions)
  echoRoute(proxied)
  const behindProxy = await listen(t, proxied, logs)
  assert.equal((await upgradeStatus(`${behindProxy.wsUrl}/ws`, { 'x-forwarded-for': '198.51.100.1' })).status, 101)
  assert.equal((await upgradeStatus(`${behindProxy.wsUrl}/ws`, { 'x-forwarded-for': '198.51.100.2' })).status, 101, 'another client IP has its own budget')
  assert.equal((await upgradeStatus(`${behindProxy.wsUrl}/ws`, { 'x-forwarded-for': '198.51.100.1' })).status, 429)
})
