import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import { test } from 'node:test'
import { startAppProcess } from '../helpers/app-process.js'
import { TestClient } from '../helpers/client.js'

const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c'
const CLIENT_SPAN = 'b7ad6b7169203331'

interface OtlpAttribute { key: string, value: Record<string, unknown> }
interface OtlpSpan { traceId: string, spanId: string, parentSpanId?: string, name: string, kind: number, attributes: OtlpAttribute[], status?: { code?: number } }
interface OtlpExport { resourceSpans: Array<{ resource: { attributes: OtlpAttribute[] }, scopeSpans: Array<{ spans: OtlpSpan[] }> }> }
interface LokiPush { streams: Array<{ stream: Record<string, string>, values: Array<[string, string]> }> }

/** A loopback stand-in for Jaeger's OTLP/HTTP port and Loki's push API: it keeps what it is sent. */
async function startReceiver (t: Parameters<typeof startAppProcess>[0]) {
  const received = { traces: [] as OtlpExport[], logs: [] as LokiPush[], other: [] as string[] }
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      if (request.method === 'POST' && request.url === '/v1/traces') received.traces.push(JSON.parse(body))
      else if (request.method === 'POST' && request.url === '/loki/api/v1/push') received.logs.push(JSON.parse(body))
      else received.other.push(`${request.method} ${request.url}`)
      response.writeHead(request.url === '/v1/traces' ? 200 : 204, { 'content-type': 'application/json' }).end(request.url === '/v1/traces' ? '{}' : undefined)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  const address = server.address() as { port: number }
  return { url: `http://127.0.0.1:${address.port}`, received }
}

const attribute = (attributes: OtlpAttribute[], key: string): unknown => {
  const value = attributes.find((entry) => entry.key === key)?.value
  return value === undefined ? undefined : Object.values(value)[0]
}

test('the example app exports its spans over OTLP/HTTP and pushes its logs to Loki, joined by trace id', async (t) => {
  const receiver = await startReceiver(t)
  const app = await startAppProcess(t, {
    LOG_LEVEL: 'debug',
    WS_DRAIN_MS: '50',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: 'realtime-under-test',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    LOKI_URL: receiver.url,
    DEPLOYMENT_ENV: 'ci'
  })
  const client = await TestClient.connect(t, `${app.url.replace('http', 'ws')}/ws?token=not-a-real-secret`)
  client.send({ type: 'echo', id: 'traced', data: { text: 'follow me' }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  await client.next((frame) => frame.id === 'traced')
  client.send({ type: 'echo', id: 'invalid', data: { text: 7 }, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` })
  assert.equal((await client.next((frame) => frame.id === 'invalid')).error.code, 'VALIDATION_FAILED')

  // SIGTERM drains and flushes both exporters before the process exits.
  app.child.kill('SIGTERM')
  const [exitCode] = await once(app.child, 'exit')
  assert.equal(exitCode, 0)
  assert.deepEqual(receiver.received.other, [])

  const resources = receiver.received.traces.flatMap((body) => body.resourceSpans)
  assert.ok(resources.length > 0, 'spans were exported')
  for (const resource of resources) assert.equal(attribute(resource.resource.attributes, 'service.name'), 'realtime-under-test')
  const spans = resources.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans))
  const echoes = spans.filter((span) => span.name === 'ws echo')
  assert.equal(echoes.length, 2)
  for (const echo of echoes) {
    assert.equal(echo.traceId, CLIENT_TRACE, 'the message span joins the client\'s trace')
    assert.equal(echo.parentSpanId, CLIENT_SPAN)
    assert.equal(echo.kind, 2, 'SERVER')
  }
  const failed = echoes.find((span) => attribute(span.attributes, 'ws.message.id') === 'invalid')
  assert.equal(failed?.status?.code, 2, 'status ERROR')
  assert.equal(attribute(failed?.attributes ?? [], 'ws.error.code'), 'VALIDATION_FAILED')
  const upgrade = spans.find((span) => span.name === 'GET /ws')
  assert.ok(upgrade !== undefined, `the upgrade span was ended and exported; got ${spans.map((span) => span.name).join(', ')}`)
  assert.equal(attribute(upgrade.attributes, 'http.response.status_code'), 101)
  assert.ok(!JSON.stringify(receiver.received.traces).includes('not-a-real-secret'), 'the token stays out of traces')

  const streams = receiver.received.logs.flatMap((body) => body.streams)
  assert.ok(streams.length > 0, 'logs were pushed')
  for (const { stream } of streams) {
    assert.deepEqual(Object.keys(stream).sort(), ['env', 'level', 'service'], 'only low-cardinality labels')
    assert.equal(stream.service, 'realtime-under-test')
    assert.equal(stream.env, 'ci')
  }
  const lines = streams.flatMap(({ stream, values }) => values.map(([timestamp, line]) => ({ ...JSON.parse(line), lokiLevel: stream.level, timestamp })))
  assert.ok(lines.every((line) => /^\d{19}$/.test(line.timestamp)), 'nanosecond timestamps')
  const refused = lines.find((line) => line.msg === 'ws.validation_failed')
  assert.equal(refused?.trace_id, CLIENT_TRACE, 'a log line leads to the trace')
  assert.equal(refused?.span_id, failed?.spanId)
  assert.equal(refused?.lokiLevel, 'info')
  assert.equal(refused?.connectionId, client.welcome?.data.connectionId)
  const handled = lines.find((line) => line.msg === 'ws.message')
  assert.equal(handled?.trace_id, CLIENT_TRACE, 'the handled message is logged at debug, in its trace')
  assert.equal(handled?.outcome, 'ok')
  assert.ok(lines.some((line) => line.msg === 'ws.close'), 'lines written during shutdown are flushed')
  assert.ok(!JSON.stringify(receiver.received.logs).includes('not-a-real-secret'), 'the token stays out of the logs')
  assert.match(app.output(), /"msg":"ws.validation_failed"/, 'stdout keeps every line too')
})
