import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import realtime, { MemoryBroker } from '../../plugin/index.js'

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

test('two live instances sharing a registry each report their routes; a closed one leaves no series and keeps its counts', async (t) => {
  const registry = new Registry()
  const build = async (url: string) => {
    const app = Fastify()
    await app.register(realtime, { metrics: { registry } })
    app.wsRoute(url).message('echo', {}, () => {})
    await app.ready()
    return app
  }
  const a = await build('/a')
  const b = await build('/b')
  t.after(async () => await a.close())
  let text = await registry.metrics()
  assert.match(text, /^ws_buffered_bytes\{route="\/a"\} 0$/m)
  assert.match(text, /^ws_buffered_bytes\{route="\/b"\} 0$/m)

  await b.listen({ port: 0, host: '127.0.0.1' })
  const { WebSocket } = await import('ws')
  const socket = new WebSocket(`ws://127.0.0.1:${(b.server.address() as { port: number }).port}/b`, ['realtime.v1'])
  await new Promise((resolve) => socket.once('message', resolve))
  socket.close()
  await b.close()
  text = await registry.metrics()
  assert.match(text, /^ws_buffered_bytes\{route="\/a"\} 0$/m)
  assert.doesNotMatch(text, /^ws_buffered_bytes\{route="\/b"\}/m, 'the closed instance\'s gauge is gone')
  // Its $welcome, counted but not yet collected when it closed, is not lost.
  assert.match(text, /^ws_messages_sent_total\{route="\/b",type="\$welcome"\} 1$/m)
})
