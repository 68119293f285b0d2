import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import realtime, { MemoryBroker } from '../plugin/index.js'

test('a registry reused by a later plugin instance reports that instance\'s broker, not the first one\'s', async (t) => {
  const registry = new Registry()
  const first = Fastify()
  const firstBroker = new MemoryBroker()
  await first.register(realtime, { broker: firstBroker, metrics: { registry } })
  await first.ready()
  await first.close()
  await firstBroker.close()

  const second = Fastify()
  t.after(() => second.close())
  await second.register(realtime, { metrics: { registry } })
  await second.ready()
  const text = await registry.metrics()
  assert.match(text, /^ws_broker_up\{broker="memory"\} 1$/m, 'the live broker, not the closed one')
})
