import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { ConfigError, loadConfig } from '../../app/config.js'
import { startApp } from '../helpers/app.js'
import { startAppProcess } from '../helpers/app-process.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'

function pick<T extends object, K extends keyof T> (from: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((key) => [key, from[key]])) as Pick<T, K>
}

test('config: defaults, WS_* values, and clear errors for bad values', () => {
  const unset = {
    maxPayload: undefined,
    heartbeatMs: undefined,
    idleTimeoutMs: undefined,
    maxConnections: undefined,
    maxBufferedBytes: undefined,
    upgradeRateLimit: undefined,
    headersTimeoutMs: undefined,
    maxSockets: undefined,
    messagesPerSecond: undefined,
    identityMessagesPerSecond: undefined,
    addressMessagesPerSecond: undefined,
    allowedOrigins: undefined,
    drainMs: undefined,
    presenceWindowMs: undefined,
    tls: undefined
  }
  assert.deepEqual(loadConfig({}), {
    port: 3000,
    host: '0.0.0.0',
    logLevel: 'info',
    trustProxy: false,
    authSecret: undefined,
    serviceName: 'fastify-realtime-example',
    environment: 'development',
    lokiUrl: undefined,
    redisUrl: undefined,
    historySize: undefined,
    presenceLeaseMs: undefined,
    traceSampleRatio: 1,
    ...unset
  })
  assert.deepEqual(
    pick(loadConfig({ OTEL_SERVICE_NAME: 'chat', DEPLOYMENT_ENV: 'production', LOKI_URL: 'http://loki:3100' }), 'serviceName', 'environment', 'lokiUrl'),
    { serviceName: 'chat', environment: 'production', lokiUrl: 'http://loki:3100' }
  )
  assert.throws(() => loadConfig({ LOKI_URL: 'loki:3100' }), /LOKI_URL must be an http\(s\) URL/)
  assert.equal(loadConfig({ REDIS_URL: 'redis://redis:6379/0' }).redisUrl, 'redis://redis:6379/0')
  assert.equal(loadConfig({ BROKER_HISTORY_SIZE: '5000' }).historySize, 5000)
  assert.deepEqual(pick(loadConfig({ BROKER_PRESENCE_LEASE_MS: '3000', WS_PRESENCE_WINDOW_MS: '250' }), 'presenceLeaseMs', 'presenceWindowMs'), { presenceLeaseMs: 3000, presenceWindowMs: 250 })
  assert.throws(() => loadConfig({ WS_PRESENCE_WINDOW_MS: '0' }), /WS_PRESENCE_WINDOW_MS/)
  // The plugin samples messages at the ratio the SDK is told, only when an SDK runs.
  const otlp = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' }
  assert.equal(loadConfig(otlp).traceSampleRatio, 0.01)
  assert.equal(loadConfig({ ...otlp, OTEL_TRACES_SAMPLER: 'traceidratio' }).traceSampleRatio, 0.01)
  assert.equal(loadConfig({ ...otlp, OTEL_TRACES_SAMPLER: 'parentbased_always_on' }).traceSampleRatio, 1)
  assert.equal(loadConfig({ ...otlp, OTEL_TRACES_SAMPLER_ARG: '2' }).traceSampleRatio, 1, 'out of range: 1, as the SDK reads it')
  assert.equal(loadConfig({ ...otlp, OTEL_EXPORTER_OTLP_ENDPOINT: '' }).traceSampleRatio, 1, 'no SDK, nothing to sample for')
  assert.equal(loadConfig({ ...otlp, OTEL_SDK_DISABLED: 'true' }).traceSampleRatio, 1)
  assert.throws(() => loadConfig({ BROKER_HISTORY_SIZE: '0' }), /BROKER_HISTORY_SIZE/)
  assert.throws(() => loadConfig({ REDIS_URL: 'http://redis' }), /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/)
  const config = loadConfig({
    PORT: '8080',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1',
    AUTH_SECRET: 's'.repeat(32),
    WS_MAX_PAYLOAD: '1024',
    WS_HEARTBEAT_MS: '0',
    WS_IDLE_TIMEOUT_MS: '60000',
    WS_MAX_CONNECTIONS: '5000',
    WS_MAX_BUFFERED_BYTES: '65536',
    WS_UPGRADE_RATE_LIMIT: '120',
    WS_HEADERS_TIMEOUT_MS: '5000',
    WS_MAX_SOCKETS: '9000',
    WS_MESSAGES_PER_SECOND: '5',
    WS_IDENTITY_MESSAGES_PER_SECOND: '20',
    WS_ADDRESS_MESSAGES_PER_SECOND: '40',
    WS_ALLOWED_ORIGINS: 'https://a.example, http://localhost:3000',
    WS_DRAIN_MS: '2000'
  })
  assert.deepEqual(config, {
    port: 8080,
    host: '127.0.0.1',
    logLevel: 'debug',
    trustProxy: '10.0.0.0/8, 127.0.0.1',
    authSecret: 's'.repeat(32),
    maxPayload: 1024,
    heartbeatMs: 0,
    idleTimeoutMs: 60000,
    maxConnections: 5000,
    maxBufferedBytes: 65536,
    upgradeRateLimit: 120,
    headersTimeoutMs: 5000,
    maxSockets: 9000,
    messagesPerSecond: 5,
    identityMessagesPerSecond: 20,
    addressMessagesPerSecond: 40,
    allowedOrigins: ['https://a.example', 'http://localhost:3000'],
    drainMs: 2000,
    serviceName: 'fastify-realtime-example',
    environment: 'development',
    lokiUrl: undefined,
    redisUrl: undefined,
    historySize: undefined,
    presenceLeaseMs: undefined,
    presenceWindowMs: undefined,
    traceSampleRatio: 1,
    tls: undefined
  })
  assert.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  assert.equal(loadConfig({ TRUST_PROXY: '10.0.0.0/8' }).trustProxy, '10.0.0.0/8')
  assert.throws(() => loadConfig({ TRUST_PROXY: '1' }), /TRUST_PROXY must be true, false or the proxies' addresses/)
  assert.throws(() => loadConfig({ AUTH_SECRET: 'short' }), /AUTH_SECRET must be at least 32 characters/)
  assert.throws(() => loadConfig({ WS_ALLOWED_ORIGINS: 'example.com' }), /WS_ALLOWED_ORIGINS/)
  assert.throws(() => loadConfig({ PORT: 'eighty' }), (err: Error) => err instanceof ConfigError && /PORT must be an integer/.test(err.message))
  assert.throws(() => loadConfig({ PORT: '70000' }), ConfigError)
  assert.throws(() => loadConfig({ WS_MAX_PAYLOAD: '0' }), /WS_MAX_PAYLOAD/)
  assert.throws(() => loadConfig({ LOG_LEVEL: 'loud' }), /LOG_LEVEL must be one of/)
})

test('example app: health, demo page, echo and say to a room on /ws', async (t) => {
  const server = await startApp(t, { WS_MESSAGES_PER_SECOND: '100' })
  assert.deepEqual(await (await fetch(`${server.httpUrl}/health/live`)).json(), { status: 'ok' })
  assert.deepEqual(await (await fetch(`${server.httpUrl}/health/ready`)).json(), { status: 'ready' })
  const page = await fetch(`${server.httpUrl}/`)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  assert.match(await page.text(), /<script type="module" src="\/demo.js">/)
  const script = await fetch(`${server.httpUrl}/demo.js`)
  assert.match(script.headers.get('content-type') ?? '', /javascript/)
  assert.match(await script.text(), /from '\/realtime-client\.js'/)
  const bundle = await fetch(`${server.httpUrl}/realtime-client.js`)
  assert.match(bundle.headers.get('content-type') ?? '', /javascript/)
  const bundled = await bundle.text()
  assert.match(bundled, /realtime\.v1/, 'the client speaks the protocol')
  assert.match(bundled, /export\{/, 'an ES module')
  assert.doesNotMatch(bundled, /from"node:|require\(/, 'nothing from Node')

  const alice = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const bob = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal(alice.welcome?.data.limits.messagesPerSecond, 100)
  assert.deepEqual(await alice.request('echo', { text: 'hi' }), { type: '$reply', id: 1, data: { text: 'hi' } })
  assert.equal((await alice.request('echo', { text: 'x'.repeat(1001) })).error.code, 'VALIDATION_FAILED')
  assert.equal((await alice.request('echo', { text: 'x', extra: true })).error.code, 'VALIDATION_FAILED')

  const joined = await bob.request('$subscribe', { topic: 'room:lobby' })
  assert.equal(joined.data.recovered, false)
  const before = Date.now()
  const said = await alice.request('say', { room: 'lobby', text: 'hello, lobby' })
  assert.match(said.data.offset, /^\d+-\d+$/)
  const event = await bob.next((frame) => frame.type === 'message')
  assert.equal(event.topic, 'room:lobby')
  assert.equal(event.offset, said.data.offset)
  assert.deepEqual(Object.keys(event.data).sort(), ['from', 'room', 'text', 'ts'])
  assert.equal(event.data.room, 'lobby')
  assert.equal(event.data.text, 'hello, lobby')
  assert.equal(event.data.from, `anon-${String(alice.welcome?.data.connectionId).slice(0, 8)}`)
  assert.ok(event.data.ts >= before && event.data.ts <= Date.now())

  for (const room of ['Lobby', 'a b', '', 'x'.repeat(33)]) {
    assert.equal((await alice.request('say', { room, text: 'hi' })).error.code, 'VALIDATION_FAILED', room)
  }
  assert.equal((await alice.request('say', { room: 'lobby', text: '' })).error.code, 'VALIDATION_FAILED')
  assert.equal((await alice.request('say', { room: 'lobby', text: 'x'.repeat(2001) })).error.code, 'VALIDATION_FAILED')
  assert.equal((await alice.request('$subscribe', { topic: 'admin' })).error.code, 'FORBIDDEN')
  assert.equal((await alice.request('$subscribe', { topic: 'room:UPPER' })).error.code, 'FORBIDDEN')
})

test('npm start: the app listens on PORT, serves, and on SIGTERM drains with 1012 and exits 0', async (t) => {
  const { child, url } = await startAppProcess(t, { LOG_LEVEL: 'info', WS_DRAIN_MS: '300' })
  assert.equal((await fetch(`${url}/health/ready`)).status, 200)
  const client = await TestClient.connect(t, `${url.replace('http', 'ws')}/ws`)
  child.kill('SIGTERM')
  assert.deepEqual(await client.closed, { code: 1012, reason: 'server restarting' })
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})

test('a bad environment stops the app with a message naming the variable', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'app/server.ts'], {
    env: { ...process.env, PORT: 'nope' },
    stdio: ['ignore', 'ignore', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'exit')
  assert.equal(code, 1)
  assert.match(stderr, /configuration error: PORT must be an integer/)
})

test('example app: AUTH_SECRET requires an HS256 JWT; the subject is the sender; tokens stay out of the logs', async (t) => {
  const { createSigner } = await import('fast-jwt')
  const secret = 'a-test-secret-that-is-long-enough-32'
  const server = await startApp(t, { LOG_LEVEL: 'info', AUTH_SECRET: secret }, { logs: true })
  const { logs } = server
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 60_000 })
  const token = sign({ sub: 'alice' })

  const alice = await TestClient.connect(t, `${server.wsUrl}/ws?token=${token}`)
  await alice.request('$subscribe', { topic: 'room:auth' })
  await alice.request('say', { room: 'auth', text: 'signed in' })
  assert.equal((await alice.next((frame) => frame.type === 'message')).data.from, 'alice')
  const viaProtocol = await TestClient.connect(t, `${server.wsUrl}/ws`, { protocols: ['realtime.v1', `bearer.${token}`] })
  assert.equal(viaProtocol.socket.protocol, 'realtime.v1')

  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`)).status, 401)
  const forged = createSigner({ key: 'another-secret-that-is-long-enough-32', algorithm: 'HS256', expiresIn: 60_000 })({ sub: 'mallory' })
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { authorization: `Bearer ${forged}` })).status, 401)
  const expired = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 1 })({ sub: 'late' })
  await new Promise((resolve) => setTimeout(resolve, 1_100))
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { authorization: `Bearer ${expired}` })).status, 401)
  const none = createSigner({ algorithm: 'none' })({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 60 })
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { authorization: `Bearer ${none}` })).status, 401)

  const logged = JSON.stringify(logs)
  assert.ok(logs.some((line) => String((line.req as { url?: string } | undefined)?.url).includes('token=[REDACTED]')), 'the request line is there, redacted')
  assert.ok(!logged.includes(token), 'the token itself never reaches the logs')
})

test('example app: WS_* variables reach the plugin, /metrics serves ws_* beside HTTP metrics', async (t) => {
  const server = await startApp(t, { WS_MAX_CONNECTIONS: '1', WS_ALLOWED_ORIGINS: 'https://chat.example' })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`)).status, 503)
  client.socket.close(1000)
  await client.closed
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { origin: 'https://evil.example' })).status, 403)
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { origin: 'https://chat.example' })).status, 101)

  assert.equal((await fetch(`${server.httpUrl}/health/ready`)).status, 200)
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
  assert.match(metrics, /^ws_connections_total\{route="\/ws"\} \d+$/m)
  assert.match(metrics, /^ws_connections_rejected_total\{route="\/ws",reason="capacity"\} 1$/m)
  assert.match(metrics, /^ws_connections_rejected_total\{route="\/ws",reason="origin"\} 1$/m)
  assert.match(metrics, /^ws_disconnections_total\{route="\/ws",code="1000"\} \d+$/m)
  assert.match(metrics, /^process_cpu_seconds_total /m, 'process metrics')
  assert.match(metrics, /^http_request_duration_seconds_count\{.*route="\/health\/ready".*\} \d+$/m, 'HTTP route metrics')
  assert.doesNotMatch(metrics, /http_request_duration_seconds_count\{[^}]*route="\/ws"/, 'upgrades do not pollute HTTP latency')
})

test('example app: /metrics after real traffic shows every ws_* metric, with error, rate-limit and close-code series', async (t) => {
  const server = await startApp(t, { WS_MESSAGES_PER_SECOND: '3' })
  const alice = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await alice.request('$subscribe', { topic: 'room:metrics' })
  await alice.request('say', { room: 'metrics', text: 'counted' })
  await alice.next((frame) => frame.type === 'message')
  assert.equal((await alice.request('echo', { text: 5 })).error.code, 'VALIDATION_FAILED')
  // The budget of 3 per second is spent: the next message is refused.
  assert.equal((await alice.request('echo', { text: 'one too many' })).error.code, 'RATE_LIMITED')
  const bob = await TestClient.connect(t, `${server.wsUrl}/ws`)
  bob.socket.close(4321, 'client choice')
  await bob.closed
  await new Promise((resolve) => setTimeout(resolve, 50))

  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
  const series = (pattern: string): number => {
    const match = new RegExp(`^${pattern} (\\S+)$`, 'm').exec(metrics)
    assert.ok(match !== null, `no series ${pattern} in\n${metrics.split('\n').filter((line) => line.startsWith('ws_')).join('\n')}`)
    return Number(match[1])
  }
  assert.equal(series('ws_connections_active\\{route="/ws"\\}'), 1)
  assert.equal(series('ws_connections_total\\{route="/ws"\\}'), 2)
  assert.equal(series('ws_disconnections_total\\{route="/ws",code="4xxx"\\}'), 1, 'a code the client chose is folded into its range')
  assert.equal(series('ws_connection_duration_seconds_count\\{route="/ws"\\}'), 1)
  assert.equal(series('ws_messages_received_total\\{route="/ws",type="echo"\\}'), 2)
  assert.equal(series('ws_messages_received_total\\{route="/ws",type="say"\\}'), 1)
  assert.equal(series('ws_messages_sent_total\\{route="/ws",type="message"\\}'), 1)
  assert.equal(series('ws_messages_sent_total\\{route="/ws",type="\\$error"\\}'), 2)
  assert.ok(series('ws_message_bytes_total\\{route="/ws",direction="in"\\}') > 0)
  assert.ok(series('ws_message_bytes_total\\{route="/ws",direction="out"\\}') > 0)
  assert.equal(series('ws_message_duration_seconds_count\\{route="/ws",type="say",outcome="ok"\\}'), 1)
  assert.equal(series('ws_message_errors_total\\{route="/ws",type="echo",code="VALIDATION_FAILED"\\}'), 1)
  assert.equal(series('ws_message_errors_total\\{route="/ws",type="echo",code="RATE_LIMITED"\\}'), 1)
  assert.equal(series('ws_rate_limited_total\\{route="/ws",scope="message"\\}'), 1)
  assert.equal(series('ws_slow_consumer_closes_total\\{route="/ws"\\}'), 0)
  assert.equal(series('ws_buffered_bytes\\{route="/ws"\\}'), 0)
  assert.equal(series('ws_broker_publish_total\\{broker="memory",outcome="ok"\\}'), 1)
  assert.equal(series('ws_broker_delivery_seconds_count\\{broker="memory"\\}'), 1)
  assert.equal(series('ws_broker_up\\{broker="memory"\\}'), 1)
  for (const reason of ['capacity', 'evicted', 'headers_timeout']) assert.equal(series(`ws_sockets_refused_total\\{reason="${reason}"\\}`), 0)
  assert.doesNotMatch(metrics, /connectionId|connection_id/, 'no ids as labels')
})
