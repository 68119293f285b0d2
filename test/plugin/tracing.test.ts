import assert from 'node:assert/strict'
import { test } from 'node:test'
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime, { MemoryBroker, traceLogFields } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { eventually, listen, logCollector, startServer } from '../helpers/server.js'

// This file's process has a real SDK: every span the plugin makes lands in memory.
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'

const named = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name)

async function setup (t: Parameters<typeof startServer>[0]) {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', { events: { note: Type.Object({ text: Type.String() }) }, authorizeSubscribe: () => true })
      .message('echo', { data: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) }, (data) => data)
      .message('fail', {}, () => { throw new Error('boom') })
      .message('say', { data: Type.Object({ text: Type.String() }) }, async (data, { publish }) => { await publish('room', 'note', data) })
  })
  return await TestClient.connect(t, `${server.wsUrl}/ws`)
}

test('each message is a SERVER span "ws {type}", a child of the client traceparent, with its attributes', async (t) => {
  exporter.reset()
  const client = await setup(t)
  client.send({ type: 'echo', id: 'm-1', data: { text: 'hi' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  await client.next((frame) => frame.id === 'm-1')
  await eventually(() => named('ws echo').length === 1, 1_000, 'the span')
  const [span] = named('ws echo') as [ReadableSpan]
  assert.equal(span.kind, SpanKind.SERVER)
  assert.equal(span.spanContext().traceId, CLIENT_TRACE)
  assert.equal(span.parentSpanContext?.spanId, CLIENT_SPAN)
  assert.equal(span.status.code, SpanStatusCode.UNSET)
  assert.deepEqual({ ...span.attributes }, {
    'ws.route': '/ws',
    'ws.message.type': 'echo',
    'ws.connection.id': client.welcome?.data.connectionId,
    'ws.message.id': 'm-1',
    'ws.message.size': JSON.stringify({ type: 'echo', id: 'm-1', data: { text: 'hi' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` }).length
  })

  await client.request('echo', { text: 'no trace context' })
  await eventually(() => named('ws echo').length === 2, 1_000, 'the second span')
  const root = named('ws echo')[1] as ReadableSpan
  assert.notEqual(root.spanContext().traceId, CLIENT_TRACE, 'without traceparent, a trace of its own')
  assert.equal(root.parentSpanContext, undefined)
})

test('errors set status ERROR and ws.error.code; undeclared types are "ws unknown"', async (t) => {
  exporter.reset()
  const client = await setup(t)
  await client.request('echo', { text: 42 })
  await client.request('fail')
  await client.request('nope')
  await eventually(() => exporter.getFinishedSpans().length === 3, 1_000, 'three spans')
  const codes = Object.fromEntries(exporter.getFinishedSpans().map((span) => [span.name, [span.status.code, span.attributes['ws.error.code']]]))
  assert.deepEqual(codes, {
    'ws echo': [SpanStatusCode.ERROR, 'VALIDATION_FAILED'],
    'ws fail': [SpanStatusCode.ERROR, 'HANDLER_ERROR'],
    'ws unknown': [SpanStatusCode.ERROR, 'UNKNOWN_TYPE']
  })
})

test('$presence is a span like any message: "ws $presence", unset status when read, ERROR FORBIDDEN where the topic has no presence', async (t) => {
  exporter.reset()
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws', {
      authorizeSubscribe: () => true,
      presence: { info: Type.Object({}), member: () => ({}), authorize: (topic) => topic === 'room' }
    })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await client.request('$subscribe', { topic: 'room' })
  client.send({ type: '$presence', id: 'p-1', data: { topic: 'room' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  assert.equal((await client.next((frame) => frame.id === 'p-1')).data.users, 1)
  assert.equal((await client.request('$presence', { topic: 'elsewhere' })).error.code, 'FORBIDDEN')
  await eventually(() => named('ws $presence').length === 2, 1_000, 'the spans')
  const [read, refused] = named('ws $presence') as [ReadableSpan, ReadableSpan]
  assert.equal(read.spanContext().traceId, CLIENT_TRACE)
  assert.equal(read.attributes['ws.message.type'], '$presence')
  assert.equal(read.status.code, SpanStatusCode.UNSET)
  assert.deepEqual([refused.status.code, refused.attributes['ws.error.code']], [SpanStatusCode.ERROR, 'FORBIDDEN'])
})

test('a publish is a PRODUCER span under the message; the delivery joins its trace through the broker', async (t) => {
  exporter.reset()
  const client = await setup(t)
  await client.request('$subscribe', { topic: 'room' })
  client.send({ type: 'say', id: 's', data: { text: 'traced' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  await client.next((frame) => frame.type === 'note')
  await eventually(() => named('ws say').length === 1 && named('deliver note').length === 1, 1_000, 'the spans')
  const [message] = named('ws say') as [ReadableSpan]
  const [publish] = named('publish note') as [ReadableSpan]
  const [delivery] = named('deliver note') as [ReadableSpan]
  assert.equal(publish.kind, SpanKind.PRODUCER)
  assert.equal(publish.parentSpanContext?.spanId, message.spanContext().spanId)
  assert.equal(delivery.kind, SpanKind.CONSUMER)
  assert.equal(delivery.spanContext().traceId, CLIENT_TRACE)
  assert.equal(delivery.parentSpanContext?.spanId, publish.spanContext().spanId)
  assert.equal(publish.attributes['messaging.destination.name'], 'room')
})

test('with @fastify/otel, the upgrade span ends at the 101; messages link to it; log lines carry the trace ids', async (t) => {
  exporter.reset()
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'debug', stream, mixin: traceLogFields } })
  await app.register(new FastifyOtelInstrumentation().plugin())
  await app.register(realtime, { drainMs: 50 })
  app.wsRoute('/ws').message('echo', { data: Type.Object({ text: Type.String() }) }, (_data, { log }) => { log.info('handled') })
  const server = await listen(t, app, logs)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const connectionId = client.welcome?.data.connectionId

  await eventually(() => named('request').length === 1, 1_000, 'the upgrade span to end')
  const [upgrade] = named('request') as [ReadableSpan]
  assert.equal(upgrade.attributes['http.response.status_code'], 101)
  assert.equal(upgrade.attributes['http.route'], '/ws')
  assert.equal(upgrade.attributes['ws.connection.id'], connectionId)

  await client.request('echo', { text: 'linked' })
  client.send({ type: 'echo', id: 'bad', data: {}, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  await client.next((frame) => frame.id === 'bad')
  await eventually(() => named('ws echo').length === 2, 1_000, 'the message spans')
  const [linked, child] = named('ws echo') as [ReadableSpan, ReadableSpan]
  assert.deepEqual(linked.links.map((link) => link.context.spanId), [upgrade.spanContext().spanId], 'linked to the upgrade span')
  assert.equal(child.links.length, 0, 'a message with a traceparent is a child, not a link')

  const handled = logs.find((line) => line.msg === 'handled')
  assert.equal(handled?.trace_id, linked.spanContext().traceId)
  assert.equal(handled?.span_id, linked.spanContext().spanId)
  assert.equal(handled?.connectionId, connectionId)
  const refused = logs.find((line) => line.msg === 'ws.validation_failed')
  assert.equal(refused?.trace_id, CLIENT_TRACE, 'the plugin\'s own lines carry the client\'s trace')
  assert.equal(refused?.span_id, child.spanContext().spanId)
  const opened = logs.find((line) => line.msg === 'ws.open')
  assert.equal(opened?.trace_id, upgrade.spanContext().traceId, 'ws.open belongs to the upgrade\'s trace')
})

test('a delivery on another node joins the publisher\'s trace through the shared broker', async (t) => {
  exporter.reset()
  const broker = new MemoryBroker()
  const declare = (app: Parameters<Parameters<typeof startServer>[1]>[0]): void => {
    app.wsRoute('/ws', { events: { note: Type.Object({ text: Type.String() }) }, authorizeSubscribe: () => true })
      .message('say', { data: Type.Object({ text: Type.String() }) }, async (data, { publish }) => { await publish('room', 'note', data) })
  }
  const publisher = await startServer(t, declare, { broker })
  const subscriber = await startServer(t, declare, { broker })
  const listener = await TestClient.connect(t, `${subscriber.wsUrl}/ws`)
  await listener.request('$subscribe', { topic: 'room' })
  const speaker = await TestClient.connect(t, `${publisher.wsUrl}/ws`)
  speaker.send({ type: 'say', id: 's', data: { text: 'across nodes' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  const note = await listener.next((frame) => frame.type === 'note')
  assert.deepEqual(note.data, { text: 'across nodes' })
  // Only the node whose clients hold the topic takes delivery of it.
  await eventually(() => named('deliver note').length === 1, 1_000, 'the delivery span')
  const [publish] = named('publish note') as [ReadableSpan]
  const [delivery] = named('deliver note') as [ReadableSpan]
  assert.equal(delivery.spanContext().traceId, CLIENT_TRACE)
  assert.equal(delivery.parentSpanContext?.spanId, publish.spanContext().spanId)
})
