import assert from 'node:assert/strict'
import { test } from 'node:test'
import { context, ROOT_CONTEXT, SamplingDecision, SpanKind, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { AlwaysOffSampler, BasicTracerProvider, InMemorySpanExporter, ParentBasedSampler, SimpleSpanProcessor, TraceIdRatioBasedSampler, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime, { realtimeSampler, traceLogFields } from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { eventually, listen, logCollector } from '../helpers/server.js'

// The SDK as the example app sets it up for OTEL_TRACES_SAMPLER=parentbased_traceidratio, at 0.25.
const RATIO = 0.25
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({
  sampler: realtimeSampler(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(RATIO) })),
  spanProcessors: [new SimpleSpanProcessor(exporter)]
}))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())

const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'
const named = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((span) => span.name === name)

async function start (t: Parameters<typeof listen>[0], traceSampleRatio: number) {
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream, mixin: traceLogFields } })
  await app.register(realtime, { drainMs: 50, traceSampleRatio, messagesPerSecond: 0, identityMessagesPerSecond: 0 })
  app.wsRoute('/ws', { events: { note: Type.Object({ text: Type.String() }) }, authorizeSubscribe: () => true })
    .message('echo', { data: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) }, (data) => data)
    .message('say', { data: Type.Object({ text: Type.String() }) }, async (data, { publish, log }) => {
      log.info({ recording: trace.getActiveSpan()?.isRecording() }, 'said')
      // What a handler starts (a query, a call) follows the message's decision.
      const query = trace.getTracer('handler').startSpan('query')
      log.info({ queryRecording: query.isRecording() }, 'queried')
      query.end()
      await publish('room', 'note', data)
    })
  const server = await listen(t, app, logs)
  return { client: await TestClient.connect(t, `${server.wsUrl}/ws`), logs }
}

test('below 1, the plugin samples messages without traceparent at traceSampleRatio, and the SDK keeps what it sampled', async (t) => {
  exporter.reset()
  const { client } = await start(t, RATIO)
  const messages = 800
  for (let index = 0; index < messages; index++) client.send({ type: 'echo', id: index, data: { text: 'x' } })
  await client.next((frame) => frame.id === messages - 1, 5_000)
  const spans = named('ws echo')
  // Binomial(800, 0.25): 200 ± 12.2; sampled twice it would be 50, never sampled 0, all 800.
  assert.ok(spans.length > 140 && spans.length < 260, `${spans.length} of ${messages} traced`)
  for (const span of spans) {
    assert.equal(span.attributes['ws.trace.sample_ratio'], RATIO, 'the ratio a kept span was sampled at, for extrapolating counts')
    assert.equal(span.parentSpanContext, undefined)
  }
})

test('a message with a sampled traceparent is traced whatever the ratio; one with an unsampled traceparent is left to the SDK', async (t) => {
  exporter.reset()
  const { client } = await start(t, 0)
  for (let index = 0; index < 20; index++) client.send({ type: 'echo', id: `s${index}`, data: { text: 'x' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  for (let index = 0; index < 20; index++) client.send({ type: 'echo', id: `u${index}`, data: { text: 'x' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00` })
  for (let index = 0; index < 20; index++) client.send({ type: 'echo', id: `n${index}`, data: { text: 'x' } })
  await client.next((frame) => frame.id === 'n19')
  const spans = named('ws echo')
  assert.equal(spans.length, 20, 'the sampled children only')
  for (const span of spans) {
    assert.equal(span.spanContext().traceId, CLIENT_TRACE)
    assert.equal(span.parentSpanContext?.spanId, CLIENT_SPAN)
    assert.equal(span.attributes['ws.trace.sample_ratio'], undefined, 'not sampled by the plugin')
  }
})

test('an untraced message leaves what its handler starts untraced, its publish carries no trace, and its log lines no trace ids', async (t) => {
  exporter.reset()
  const { client, logs } = await start(t, 0)
  await client.request('$subscribe', { topic: 'room' })
  await client.request('say', { text: 'quiet' })
  await client.next((frame) => frame.type === 'note')
  assert.deepEqual(exporter.getFinishedSpans().map((span) => span.name), [], 'no message, query, publish or delivery span')
  const said = logs.find((line) => line.msg === 'said')
  assert.equal(said?.recording, false)
  assert.equal(said?.trace_id, undefined, 'no trace id that leads nowhere')
  assert.equal(logs.find((line) => line.msg === 'queried')?.queryRecording, false, 'the handler\'s own span is sampled out with the message')

  // The same handler under a sampled traceparent: everything joins the client's trace.
  client.send({ type: 'say', id: 'traced', data: { text: 'loud' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  await client.next((frame) => frame.type === 'note')
  await eventually(() => named('deliver note').length === 1, 1_000, 'the delivery span')
  assert.deepEqual(new Set(exporter.getFinishedSpans().map((span) => span.spanContext().traceId)), new Set([CLIENT_TRACE]))
  assert.deepEqual(exporter.getFinishedSpans().map((span) => span.name).sort(), ['deliver note', 'publish note', 'query', 'ws say'])
  assert.equal(logs.findLast((line) => line.msg === 'said')?.trace_id, CLIENT_TRACE)
})

test('realtimeSampler keeps root spans the plugin sampled and leaves every other span to the sampler it wraps', () => {
  const sampler = realtimeSampler(new AlwaysOffSampler())
  const presampled = { 'ws.trace.sample_ratio': 0.01 }
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: CLIENT_TRACE, spanId: CLIENT_SPAN, traceFlags: 1, isRemote: true })
  assert.equal(sampler.shouldSample(ROOT_CONTEXT, CLIENT_TRACE, 'ws echo', SpanKind.SERVER, presampled, []).decision, SamplingDecision.RECORD_AND_SAMPLED)
  assert.equal(sampler.shouldSample(parent, CLIENT_TRACE, 'ws echo', SpanKind.SERVER, presampled, []).decision, SamplingDecision.NOT_RECORD, 'a span with a parent is the SDK\'s call')
  assert.equal(sampler.shouldSample(ROOT_CONTEXT, CLIENT_TRACE, 'GET /ws', SpanKind.SERVER, {}, []).decision, SamplingDecision.NOT_RECORD)
  assert.equal(sampler.toString(), 'RealtimeSampler{AlwaysOffSampler}')
})
