import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { DEFAULTS, ErrorCode } from '../../plugin/index.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

// A client that opens more connections does not get more messages through: budgets are shared
// per identity (and per address for anonymous clients, when configured) across its connections.

function echoRoute (app: FastifyInstance): void {
  app.wsRoute('/ws').message('echo', { data: Type.Object({ n: Type.Integer() }), reply: Type.Object({ n: Type.Integer() }) }, (data) => data)
}

/** Sends `count` echoes at once and sorts the answers into accepted and rate-limited. */
async function burst (client: TestClient, count: number, from: number): Promise<{ accepted: number, limited: number }> {
  const answers: Frame[] = []
  const done = new Promise<void>((resolve) => {
    client.socket.on('message', function collect (raw) {
      const frame = JSON.parse(String(raw)) as Frame
      if (typeof frame.id === 'number' && frame.id >= from && frame.id < from + count) answers.push(frame)
      if (answers.length === count) {
        client.socket.off('message', collect)
        resolve()
      }
    })
  })
  for (let i = 0; i < count; i++) client.sendRaw(JSON.stringify({ type: 'echo', id: from + i, data: { n: i } }))
  await done
  const limited = answers.filter((frame) => frame.error?.code === ErrorCode.RATE_LIMITED).length
  return { accepted: answers.filter((frame) => frame.type === '$reply').length, limited }
}

test('connections of one identity share its budget; another identity keeps its own', async (t) => {
  assert.equal(DEFAULTS.identityMessagesPerSecond, 200)
  const server = await startServer(t, echoRoute, {
    messagesPerSecond: 50,
    identityMessagesPerSecond: 100,
    authenticate: (request) => ({ id: String(request.headers['x-user']) })
  })
  const connect = async (user: string): Promise<TestClient> => await TestClient.connect(t, `${server.wsUrl}/ws`, { headers: { 'x-user': user } })
  const mallory = await Promise.all(Array.from({ length: 6 }, async () => await connect('mallory')))
  const alice = await connect('alice')
  // Each connection stays within its own 50/s; together they ask for 240.
  const results = await Promise.all(mallory.map(async (client, index) => await burst(client, 40, index * 100)))
  const accepted = results.reduce((sum, result) => sum + result.accepted, 0)
  const limited = results.reduce((sum, result) => sum + result.limited, 0)
  t.diagnostic(`mallory: ${accepted} accepted, ${limited} refused over 6 connections`)
  assert.equal(accepted + limited, 240)
  // The shared burst of 100, plus what refills while the burst is read (100/s).
  assert.ok(accepted >= 100 && accepted <= 115, `accepted ${accepted}`)
  assert.deepEqual(await burst(alice, 40, 1_000), { accepted: 40, limited: 0 })
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_rate_limited_total', { scope: 'client' }), limited)
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_rate_limited_total', { scope: 'message' }), 0)
})

test('anonymous connections share a budget per address only when addressMessagesPerSecond is set', async (t) => {
  assert.equal(DEFAULTS.addressMessagesPerSecond, 0, 'off by default: NAT and proxies put many people behind one address')
  const open = await startServer(t, echoRoute, { messagesPerSecond: 50 })
  const unlimited = await Promise.all(Array.from({ length: 3 }, async () => await TestClient.connect(t, `${open.wsUrl}/ws`)))
  const openResults = await Promise.all(unlimited.map(async (client, index) => await burst(client, 40, index * 100)))
  assert.deepEqual(openResults.map((result) => result.accepted), [40, 40, 40])

  const shared = await startServer(t, echoRoute, { messagesPerSecond: 50, addressMessagesPerSecond: 30 })
  const clients = await Promise.all(Array.from({ length: 3 }, async () => await TestClient.connect(t, `${shared.wsUrl}/ws`)))
  const results = await Promise.all(clients.map(async (client, index) => await burst(client, 40, index * 100)))
  const accepted = results.reduce((sum, result) => sum + result.accepted, 0)
  assert.ok(accepted >= 30 && accepted <= 40, `accepted ${accepted} of 120 from one address`)
  // The budget goes with the last connection that held it.
  for (const client of clients) client.socket.close()
  await eventually(() => shared.app.realtime.connectionCount === 0, 2_000, 'the connections to close')
  const fresh = await TestClient.connect(t, `${shared.wsUrl}/ws`)
  assert.equal((await fresh.request('echo', { n: 1 })).type, '$reply')
})
