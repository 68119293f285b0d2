import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import realtime, { MemoryBroker, RealtimeError } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { listen, logCollector, type TestServer } from '../helpers/server.js'

/** Each type counts its runs; `slow` takes 300 ms, `refuse` answers an error of its own. */
function declareRoute (app: FastifyInstance, runs: Map<string, number>) {
  const count = (type: string): number => {
    const n = (runs.get(type) ?? 0) + 1
    runs.set(type, n)
    return n
  }
  app.wsRoute('/ws')
    .message('charge', { data: Type.Object({ cents: Type.Integer() }), reply: Type.Object({ run: Type.Integer() }) }, () => ({ run: count('charge') }))
    .message('slow', { reply: Type.Object({ run: Type.Integer() }) }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 300))
      return { run: count('slow') }
    })
    .message('refuse', {}, () => {
      count('refuse')
      throw new RealtimeError('CARD_DECLINED', 'declined', { details: { reason: 'test' } })
    })
}

async function startNodes (t: TestContext, count: number, runs: Map<string, number>): Promise<TestServer[]> {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  const nodes: TestServer[] = []
  for (let i = 0; i < count; i++) {
    const { stream, logs } = logCollector()
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(realtime, { broker, drainMs: 50, authenticate: (request) => ({ id: String(request.headers['x-user']) }) })
    declareRoute(app, runs)
    nodes.push(await listen(t, app, logs))
  }
  return nodes
}

const as = async (t: TestContext, node: TestServer, user: string): Promise<TestClient> => await TestClient.connect(t, `${node.wsUrl}/ws`, { headers: { 'x-user': user } })

async function keyed (client: TestClient, type: string, idempotencyKey: string, data?: unknown, id: string = `${type}-${Math.random()}`): Promise<Record<string, any>> {
  client.send({ type, id, data, idempotencyKey })
  return await client.next((frame) => frame.id === id, 3_000)
}

test('a message with an idempotency key runs once: retries, on this connection or another, get the first run\'s answer; other users\' keys are their own', async (t) => {
  const runs = new Map<string, number>()
  const [node] = await startNodes(t, 1, runs)
  const ann = await as(t, node!, 'ann')
  const first = await keyed(ann, 'charge', 'order-1', { cents: 500 })
  const again = await keyed(ann, 'charge', 'order-1', { cents: 500 })
  assert.deepEqual([first.data, again.data], [{ run: 1 }, { run: 1 }])
  const annLater = await as(t, node!, 'ann')
  assert.deepEqual((await keyed(annLater, 'charge', 'order-1', { cents: 500 })).data, { run: 1 }, 'a new connection of the same user')
  const bob = await as(t, node!, 'bob')
  assert.deepEqual((await keyed(bob, 'charge', 'order-1', { cents: 500 })).data, { run: 2 }, 'another user\'s key is another key')
  assert.deepEqual((await ann.request('charge', { cents: 500 })).data, { run: 3 }, 'without a key, every message runs')
  assert.equal(runs.get('charge'), 3)

  // An error of the handler's own is the answer too; a malformed key is refused before anything runs.
  const refused = await keyed(ann, 'refuse', 'r-1')
  assert.deepEqual(refused.error, { code: 'CARD_DECLINED', message: 'declined', details: { reason: 'test' } })
  assert.deepEqual((await keyed(ann, 'refuse', 'r-1')).error, refused.error)
  assert.equal(runs.get('refuse'), 1)
  assert.equal((await keyed(ann, 'charge', 'has space', { cents: 1 })).error.code, 'INVALID_MESSAGE')
  assert.match(await node!.app.realtime.metricsRegistry!.metrics(), /^ws_idempotent_replays_total\{route="\/ws",type="charge"\} 2$/m)
})

test('a retry while the first run still runs gets IN_PROGRESS with retryAfterMs; the client went away meanwhile, its retry on another node gets the answer', async (t) => {
  const runs = new Map<string, number>()
  const [a, b] = await startNodes(t, 2, runs)
  const ann = await as(t, a!, 'ann')
  ann.send({ type: 'slow', id: 'first', idempotencyKey: 'job-7' })
  const busy = await keyed(ann, 'slow', 'job-7')
  assert.equal(busy.error.code, 'IN_PROGRESS')
  assert.ok(busy.error.retryAfterMs > 0 && busy.error.retryAfterMs <= 5_000, String(busy.error.retryAfterMs))
  // The connection drops before the answer: the run goes on and stores it.
  ann.socket.terminate()
  await new Promise((resolve) => setTimeout(resolve, 400))
  const elsewhere = await as(t, b!, 'ann')
  assert.deepEqual((await keyed(elsewhere, 'slow', 'job-7')).data, { run: 1 })
  assert.equal(runs.get('slow'), 1)
})
