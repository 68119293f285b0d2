import assert from 'node:assert/strict'
import { test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import realtime, { ErrorCode, MemoryBroker, RealtimeError } from '../../plugin/index.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { eventually, startServer } from '../helpers/server.js'

const Text = Type.Object({ text: Type.String({ maxLength: 100 }) })

function declareTestRoute (app: FastifyInstance): void {
  app.wsRoute('/ws', { events: { note: Type.Object({ text: Type.String() }) } })
    .message('echo', { data: Text, reply: Text }, (data) => ({ text: data.text }))
    .message('count', { data: Type.Object({ n: Type.Integer(), x: Type.Optional(Type.Number()) }), reply: Type.Object({ n: Type.Integer() }) }, (data) => ({ n: data.n }))
    .message('leak', { reply: Text }, () => ({ text: 'visible', secret: 'must not leave' }) as { text: string })
    .message('push', {}, (_data, { connection }) => {
      connection.send('note', { text: 'pushed', internal: 'hidden' } as { text: string })
    })
    .message('explode', {}, () => { throw new Error('database password is hunter2') })
    .message('reject', {}, async () => { throw new Error('async failure with internals') })
    .message('forbid', {}, () => { throw new RealtimeError('FORBIDDEN', 'not your room') })
    .message('custom', {}, () => { throw new RealtimeError('ROOM_FULL', 'the room is full', { details: { capacity: 2 } }) })
    .message('announce', {}, async (_data, { publish }) => { await publish('news', 'note', { text: 'x' }) })
}

test('a connection opens with $welcome stating its id, heartbeat and limits', async (t) => {
  const server = await startServer(t, declareTestRoute, { heartbeatMs: 30_000, maxPayload: 4096, messagesPerSecond: 20 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal(client.socket.protocol, 'realtime.v1')
  const data = client.welcome?.data
  assert.match(data.connectionId, /^[\w-]{16}$/)
  assert.deepEqual({ ...data, connectionId: 'x' }, { connectionId: 'x', heartbeatMs: 30_000, limits: { maxPayload: 4096, messagesPerSecond: 20 } })
  const other = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.notEqual(other.welcome?.data.connectionId, data.connectionId)
  assert.ok(server.logs.some((line) => line.msg === 'ws.open' && line.connectionId === data.connectionId && line.route === '/ws'))
})

test('a message with an id gets exactly one $reply with that id; without an id, none', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.send({ type: 'echo', id: 'c-1', data: { text: 'hello' } })
  client.send({ type: 'echo', data: { text: 'no answer wanted' } })
  client.send({ type: 'echo', id: 7, data: { text: 'numeric id' } })
  assert.deepEqual(await client.next(), { type: '$reply', id: 'c-1', data: { text: 'hello' } })
  assert.deepEqual(await client.next(), { type: '$reply', id: 7, data: { text: 'numeric id' } })
  const reply = await client.request('push')
  assert.deepEqual(reply, { type: '$reply', id: 1 }, 'a reply without a reply schema has no data')
  assert.deepEqual(client.drain(), [{ type: 'note', data: { text: 'pushed' } }])
})

test('outgoing replies and events carry only the fields their schema declares', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.deepEqual(await client.request('leak'), { type: '$reply', id: 1, data: { text: 'visible' } })
  await client.request('push')
  const note = await client.next((frame) => frame.type === 'note')
  assert.deepEqual(note.data, { text: 'pushed' })
})

test('each envelope error has its code, keeps the id when it could be read, and keeps the connection open', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const cases: Array<[string, string, unknown]> = [
    ['{"type":', ErrorCode.INVALID_JSON, undefined],
    ['[1,2]', ErrorCode.INVALID_MESSAGE, undefined],
    ['"just a string"', ErrorCode.INVALID_MESSAGE, undefined],
    ['{"id":5}', ErrorCode.INVALID_MESSAGE, 5],
    ['{"type":42,"id":"a"}', ErrorCode.INVALID_MESSAGE, 'a'],
    ['{"type":"echo","id":{"x":1}}', ErrorCode.INVALID_MESSAGE, undefined],
    [`{"type":"echo","id":"${'x'.repeat(65)}"}`, ErrorCode.INVALID_MESSAGE, undefined],
    ['{"type":"echo","id":1e300}', ErrorCode.INVALID_MESSAGE, undefined],
    ['{"type":"echo","id":"t","traceparent":"nonsense"}', ErrorCode.INVALID_MESSAGE, 't'],
    ['{"type":"nope","id":"u"}', ErrorCode.UNKNOWN_TYPE, 'u'],
    ['{"type":"$internal","id":"v"}', ErrorCode.UNKNOWN_TYPE, 'v']
  ]
  for (const [raw, code, id] of cases) {
    client.sendRaw(raw)
    const frame = await client.next()
    assert.equal(frame.type, '$error', raw)
    assert.equal(frame.error.code, code, raw)
    assert.equal(frame.id, id, raw)
    assert.equal(typeof frame.error.message, 'string')
  }
  assert.deepEqual(await client.request('echo', { text: 'still open' }), { type: '$reply', id: 1, data: { text: 'still open' } })
  assert.ok(server.logs.some((line) => line.msg === 'ws.protocol_error' && line.code === 'INVALID_JSON'))
  // Every frame is counted, under its declared type or `unknown`, never a value the client chose.
  const registry = server.app.realtime.metricsRegistry
  assert.equal(await metricValue(registry, 'ws_messages_received_total', { route: '/ws' }), cases.length + 1)
  assert.equal(await metricValue(registry, 'ws_messages_received_total', { route: '/ws', type: 'echo' }), 1)
  assert.equal(await metricValue(registry, 'ws_messages_received_total', { route: '/ws', type: 'nope' }), 0)
  assert.equal(await metricValue(registry, 'ws_messages_sent_total', { route: '/ws', type: '$error' }), cases.length)
  assert.equal(await metricValue(registry, 'ws_messages_sent_total', { route: '/ws', type: '$reply' }), 1)
  assert.equal(await metricValue(registry, 'ws_message_errors_total', { route: '/ws', type: 'unknown', code: 'UNKNOWN_TYPE' }), 2)
  assert.ok(await metricValue(registry, 'ws_message_bytes_total', { route: '/ws', direction: 'in' }) > 100)
  assert.equal(await metricValue(registry, 'ws_message_duration_seconds', { route: '/ws', type: 'echo', outcome: 'ok' }), 1)
  const text = await registry!.metrics()
  assert.match(text, /^ws_messages_received_total\{route="\/ws",type="unknown"\} 11$/m)
})

test('VALIDATION_FAILED lists path and reason without echoing the input', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const huge = 'A'.repeat(50_000)
  const frame = await client.request('echo', { text: huge })
  assert.equal(frame.error.code, ErrorCode.VALIDATION_FAILED)
  assert.deepEqual(frame.error.details, [{ path: '/text', message: 'must not have more than 100 characters' }])
  assert.ok(!JSON.stringify(frame).includes('AAAA'), 'the input is not echoed')

  const missing = await client.request('echo', {})
  assert.equal(missing.error.code, ErrorCode.VALIDATION_FAILED)
  assert.equal(missing.error.details[0].path, '/')

  const longKey = 'k'.repeat(5_000)
  const extraKey = await client.request('echo', { text: 'ok', [longKey]: 1 })
  assert.equal(extraKey.type, '$reply', 'this schema allows extra keys')
  const strictServer = await startServer(t, (app) => {
    app.wsRoute('/ws').message('strict', { data: Type.Object({}, { additionalProperties: false }) }, () => {})
  })
  const strictClient = await TestClient.connect(t, `${strictServer.wsUrl}/ws`)
  const refused = await strictClient.request('strict', { [longKey]: 1 })
  assert.equal(refused.error.code, ErrorCode.VALIDATION_FAILED)
  assert.ok(refused.error.details[0].path.length < 140, 'client-chosen keys in paths are cut short')
  assert.ok(server.logs.some((line) => line.msg === 'ws.validation_failed' && line.type === 'echo'))
})

test('absurd numbers are refused: non-finite values and integers beyond the safe range', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.sendRaw('{"type":"count","id":1,"data":{"n":1,"x":1e400}}')
  assert.equal((await client.next()).error.code, ErrorCode.VALIDATION_FAILED)
  client.sendRaw('{"type":"count","id":2,"data":{"n":1e300}}')
  const frame = await client.next()
  assert.equal(frame.error.code, ErrorCode.VALIDATION_FAILED)
  assert.equal(frame.error.details[0].path, '/n')
  client.sendRaw(`{"type":"count","id":3,"data":{"n":${Number.MAX_SAFE_INTEGER}}}`)
  assert.deepEqual(await client.next(), { type: '$reply', id: 3, data: { n: Number.MAX_SAFE_INTEGER } })
})

test('hostile JSON is contained: deep nesting and prototype keys are refused before any use', async (t) => {
  const server = await startServer(t, declareTestRoute, { maxPayload: 1024 * 1024 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const deep = '{"type":"echo","id":1,"data":{"text":"x","n":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}}'
  client.sendRaw(deep)
  const nested = await client.next()
  assert.equal(nested.error.code, ErrorCode.INVALID_MESSAGE)
  assert.equal(nested.id, undefined, 'the id of an unparsed frame is unknown')
  assert.match(nested.error.message, /deeper than 32/)

  // Brackets inside strings are text, not nesting.
  assert.equal((await client.request('echo', { text: '['.repeat(99) })).type, '$reply')

  client.sendRaw('{"type":"echo","id":2,"data":{"text":"a","__proto__":{"polluted":true}}}')
  assert.equal((await client.next()).error.code, ErrorCode.INVALID_MESSAGE)
  client.sendRaw('{"type":"echo","id":3,"data":{"text":"a","constructor":{"prototype":{"polluted":true}}}}')
  assert.equal((await client.next()).error.code, ErrorCode.INVALID_MESSAGE)
  assert.equal(({} as Record<string, unknown>).polluted, undefined)
  assert.equal((await client.request('echo', { text: 'alive' })).data.text, 'alive')
})

test('prototype keys spelled with JSON escapes are refused like plain ones', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const spellings = [
    '"\\u005f_proto__":{"polluted":true}',
    '"__pr\\u006fto__":{"polluted":true}',
    '"\\u0063onstructor":{"prototype":{"polluted":true}}',
    '"constructor":{"\\u0070rototype":{"polluted":true}}',
    '"\\u0063\\u006f\\u006e\\u0073\\u0074\\u0072\\u0075\\u0063\\u0074\\u006f\\u0072":{"prototype":{"polluted":true}}'
  ]
  for (const [index, key] of spellings.entries()) {
    client.sendRaw(`{"type":"echo","id":${index},"data":{"text":"a",${key}}}`)
    const frame = await client.next()
    assert.equal(frame.error?.code, ErrorCode.INVALID_MESSAGE, key)
    assert.equal(frame.id, index)
  }
  // Escapes elsewhere are ordinary text.
  client.sendRaw('{"type":"echo","id":"e","data":{"text":"caf\\u00e9 \\u005f"}}')
  assert.deepEqual(await client.next(), { type: '$reply', id: 'e', data: { text: 'café _' } })
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_message_errors_total', { code: ErrorCode.INVALID_MESSAGE }), spellings.length)
})

test('a handler that throws or rejects yields HANDLER_ERROR, logs the stack, and nobody else notices', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const bystander = await TestClient.connect(t, `${server.wsUrl}/ws`)
  for (const type of ['explode', 'reject']) {
    const frame = await client.request(type)
    assert.equal(frame.error.code, ErrorCode.HANDLER_ERROR)
    assert.doesNotMatch(JSON.stringify(frame), /hunter2|internals|at /)
  }
  const logged = server.logs.find((line) => line.msg === 'ws.handler_error' && line.type === 'explode') as { err: { stack: string } }
  assert.match(logged.err.stack, /hunter2[\s\S]*protocol\.test\.ts/)
  assert.equal((await client.request('echo', { text: 'a' })).type, '$reply')
  assert.equal((await bystander.request('echo', { text: 'b' })).type, '$reply')
  const handled = server.logs.filter((line) => line.msg === 'ws.message').map((line) => `${String(line.type)}:${String(line.outcome)}`)
  assert.deepEqual(handled, ['explode:HANDLER_ERROR', 'reject:HANDLER_ERROR', 'echo:ok', 'echo:ok'])
})

test('RealtimeError answers with its own code, message and details', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.deepEqual((await client.request('forbid')).error, { code: 'FORBIDDEN', message: 'not your room' })
  assert.deepEqual((await client.request('custom')).error, { code: 'ROOM_FULL', message: 'the room is full', details: { capacity: 2 } })
  assert.throws(() => new RealtimeError('lower case', 'x'), /UPPER_SNAKE_CASE/)
})

test('UNAVAILABLE with retryAfterMs when the broker cannot take a publish', async (t) => {
  const broker = new MemoryBroker()
  const server = await startServer(t, declareTestRoute, { broker })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal((await client.request('announce')).type, '$reply')
  await broker.close()
  const frame = await client.request('announce')
  assert.equal(frame.error.code, ErrorCode.UNAVAILABLE)
  assert.equal(frame.error.retryAfterMs, 1000)
  assert.ok(server.logs.some((line) => line.msg === 'ws.broker_unavailable'))
  assert.equal((await client.request('echo', { text: 'local work goes on' })).type, '$reply')
})

test('RATE_LIMITED with retryAfterMs once the budget is spent; sustained abuse closes 1008', async (t) => {
  const server = await startServer(t, declareTestRoute, { messagesPerSecond: 5 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  for (let i = 0; i < 6; i++) client.send({ type: 'echo', id: i, data: { text: 'x' } })
  const frames = await Promise.all(Array.from({ length: 6 }, (_, i) => client.next((frame) => frame.id === i)))
  assert.deepEqual(frames.map((frame) => frame.type), ['$reply', '$reply', '$reply', '$reply', '$reply', '$error'])
  const limited = frames[5] as unknown as { error: { code: string, retryAfterMs: number } }
  assert.equal(limited.error.code, ErrorCode.RATE_LIMITED)
  assert.ok(limited.error.retryAfterMs > 0 && limited.error.retryAfterMs <= 200, `retryAfterMs ${limited.error.retryAfterMs}`)
  // Malformed frames spend budget too.
  client.sendRaw('not json')
  assert.equal((await client.next()).error.code, ErrorCode.RATE_LIMITED)
  assert.ok(server.logs.some((line) => line.msg === 'ws.rate_limited'))

  const bystander = await TestClient.connect(t, `${server.wsUrl}/ws`)
  for (let i = 0; i < 60; i++) client.sendRaw('{"type":"echo","data":{"text":"flood"}}')
  const closed = await client.closed
  assert.deepEqual(closed, { code: 1008, reason: 'message rate limit repeatedly exceeded' })
  assert.equal((await bystander.request('echo', { text: 'unaffected' })).type, '$reply')
})

test('binary frames: BINARY_NOT_SUPPORTED by default, close 1003 or a handler when the route says so', async (t) => {
  const received: Buffer[] = []
  const server = await startServer(t, (app) => {
    declareTestRoute(app)
    app.wsRoute('/strict', { binary: 'close' })
    app.wsRoute('/files', { binary: (data) => { received.push(data) } })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.sendRaw(Buffer.from([1, 2, 3]), true)
  const frame = await client.next()
  assert.deepEqual(frame, { type: '$error', error: { code: 'BINARY_NOT_SUPPORTED', message: 'this route accepts text frames only' } })
  assert.equal((await client.request('echo', { text: 'open' })).type, '$reply')

  const strict = await TestClient.connect(t, `${server.wsUrl}/strict`)
  strict.sendRaw(Buffer.from([1]), true)
  assert.equal((await strict.closed).code, 1003)

  const files = await TestClient.connect(t, `${server.wsUrl}/files`)
  files.sendRaw(Buffer.from([9, 8, 7]), true)
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.deepEqual(received, [Buffer.from([9, 8, 7])])
})

test('a frame over maxPayload closes the connection with 1009', async (t) => {
  const server = await startServer(t, declareTestRoute, { maxPayload: 1024 })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const bystander = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.sendRaw(JSON.stringify({ type: 'echo', data: { text: 'x'.repeat(2000) } }))
  assert.equal((await client.closed).code, 1009)
  assert.equal((await bystander.request('echo', { text: 'fine' })).type, '$reply')
  await eventually(() => server.app.realtime.connectionCount === 1, 1_000, 'the oversized sender to be gone')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '1009' }), 1)
})

test('subprotocol realtime.v1: chosen when offered, optional, and unknown versions get HTTP 400', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const url = `${server.wsUrl}/ws`
  const none = await TestClient.connect(t, url, { protocols: [] })
  assert.equal(none.socket.protocol, '')
  assert.equal((await none.request('echo', { text: 'v1 by default' })).type, '$reply')

  const withBearer = await upgradeStatus(url, { 'sec-websocket-protocol': 'realtime.v1, bearer.secret-token' })
  assert.equal(withBearer.status, 101)
  assert.equal(withBearer.headers['sec-websocket-protocol'], 'realtime.v1', 'the token is never echoed')

  const unknown = await upgradeStatus(url, { 'sec-websocket-protocol': 'realtime.v2, chat' })
  assert.equal(unknown.status, 400)
  assert.match(unknown.body, /realtime\.v1/)
  assert.equal(unknown.headers.connection, 'close', 'a refused upgrade socket is not reused')

  const bearerOnly = await upgradeStatus(url, { 'sec-websocket-protocol': 'bearer.abc' })
  assert.equal(bearerOnly.status, 101)
  assert.equal(bearerOnly.headers['sec-websocket-protocol'], undefined)
})

test('a plain GET on a WebSocket route answers 426 Upgrade Required', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const response = await fetch(`${server.httpUrl}/ws`)
  assert.equal(response.status, 426)
  assert.equal(response.headers.get('upgrade'), 'websocket')
})

test('regression: an upgrade right after a refused one succeeds for clients that pool keep-alive sockets', async (t) => {
  const server = await startServer(t, declareTestRoute)
  const url = `${server.wsUrl}/ws`
  for (let i = 0; i < 30; i++) {
    assert.equal((await upgradeStatus(url, { 'sec-websocket-protocol': 'realtime.v9' })).status, 400)
    assert.equal((await upgradeStatus(url)).status, 101)
  }
})

test('@fastify/websocket\'s injectWS reaches a route without a TCP socket: $welcome, then replies', async (t) => {
  const app = Fastify()
  t.after(async () => await app.close())
  await app.register(realtime, { metrics: false })
  app.wsRoute('/ws').message('echo', { data: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) }, (data) => data)
  await app.ready()
  const frames: Array<{ type: string, data?: unknown }> = []
  // Listening from the start: $welcome may come before injectWS resolves.
  const socket = await app.injectWS('/ws', {}, {
    onInit: (ws) => ws.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString())))
  })
  await eventually(() => frames.length === 1, 2_000, '$welcome')
  socket.send(JSON.stringify({ type: 'echo', id: 1, data: { text: 'hi' } }))
  await eventually(() => frames.length === 2, 2_000, '$reply')
  socket.terminate()
  assert.deepEqual(frames.map((frame) => frame.type), ['$welcome', '$reply'])
  assert.deepEqual(frames[1]!.data, { text: 'hi' })
})
