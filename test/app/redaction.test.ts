import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Agent, createServer, request as httpRequest, type IncomingMessage } from 'node:http'
import { test, type TestContext } from 'node:test'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { createSigner } from 'fast-jwt'
import Fastify from 'fastify'
import { loadConfig } from '../../app/config.js'
import { loggerOptions, redactUrlsInText } from '../../app/logger.js'
import realtime, { redactUrl } from '../../plugin/index.js'
import { startAppProcess } from '../helpers/app-process.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { eventually, listen, logCollector } from '../helpers/server.js'

// The in-process tests below export to memory; the example app runs in a child process and
// exports over OTLP/HTTP to a receiver in this one.
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())

const SECRET = 'a-test-secret-that-is-long-enough-32'
const sign = createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 60_000 })
const forge = createSigner({ key: 'another-secret-that-is-long-enough-32', algorithm: 'HS256', expiresIn: 60_000 })

/** A token and the pieces that must not leak alone: the signature, and the payload with it. */
function secretPieces (token: string): string[] {
  const [, payload, signature] = token.split('.') as [string, string, string]
  return [token, `${payload}.${signature}`, signature]
}

/** Every piece of every token that occurs in `text`, so a failure names what leaked. */
function leaked (text: string, tokens: string[]): string[] {
  return tokens.flatMap(secretPieces).filter((piece) => text.includes(piece))
}

/** An upgrade with a raw request target, which WHATWG URL parsing (ws, fetch) would rewrite. */
async function rawUpgrade (port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port,
      path,
      // A refused upgrade's socket is not reused: a pooled one may be closing already.
      agent: false,
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-protocol': 'realtime.v1',
        ...headers
      }
    })
    req.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve(response.statusCode ?? 0)
    })
    req.on('response', (response) => {
      response.resume()
      response.on('end', () => resolve(response.statusCode ?? 0))
    })
    req.on('error', reject)
    req.end()
  })
}

test('redactUrl: the value of every key that decodes to token, in any case; the path and other keys untouched', () => {
  const cases: Array<[string, string]> = [
    ['/ws', '/ws'],
    ['/ws?room=lobby&x=1', '/ws?room=lobby&x=1'],
    ['/ws?token=abc', '/ws?token=[REDACTED]'],
    ['/ws?room=a&token=abc&x=1', '/ws?room=a&token=[REDACTED]&x=1'],
    ['/ws?TOKEN=abc', '/ws?TOKEN=[REDACTED]'],
    ['/ws?%74oken=abc', '/ws?%74oken=[REDACTED]'],
    ['/ws?to%6Ben=abc', '/ws?to%6Ben=[REDACTED]'],
    ['/ws?to%6ben=abc', '/ws?to%6ben=[REDACTED]'],
    ['/ws?%54OKEN=abc', '/ws?%54OKEN=[REDACTED]'],
    ['/ws?%74%6F%6B%65%6E=abc&room=a', '/ws?%74%6F%6B%65%6E=[REDACTED]&room=a'],
    // The Kelvin sign lower-cases to k: over-redacting costs nothing.
    ['/ws?to%E2%84%AAen=abc', '/ws?to%E2%84%AAen=[REDACTED]'],
    ['/ws?token=abc&token=def', '/ws?token=[REDACTED]&token=[REDACTED]'],
    ['/ws?token=a=b%3D&x=1', '/ws?token=[REDACTED]&x=1'],
    // Fastify reads `#` as the start of the query, and a `#` inside a value as part of it.
    ['/ws#token=abc', '/ws#token=[REDACTED]'],
    ['/ws?room=a#&token=abc', '/ws?room=a#&token=[REDACTED]'],
    ['/ws?token=abc#def&x=1', '/ws?token=[REDACTED]&x=1'],
    // Escapes that do not decode: redacted, whatever the key might have been.
    ['/ws?%74oken%=abc', '/ws?%74oken%=[REDACTED]'],
    ['/ws?tok%ZZen=abc&room=a', '/ws?tok%ZZen=[REDACTED]&room=a'],
    ['/ws?%FF=abc', '/ws?%FF=[REDACTED]'],
    // Keys that are not token, once decoded.
    ['/ws?tok+en=abc', '/ws?tok+en=abc'],
    ['/ws?tokens=abc&xtoken=def&to%6Bens=ghi', '/ws?tokens=abc&xtoken=def&to%6Bens=ghi'],
    ['/ws?room=token%3Dabc', '/ws?room=token%3Dabc'],
    ['/ws?token', '/ws?token'],
    // The path is never rewritten, encoded or not; an encoded `?` does not start the query.
    ['/w%73?token=abc', '/w%73?token=[REDACTED]'],
    ['/ws%3Ftoken=abc', '/ws%3Ftoken=abc'],
    ['/token=abc/ws?token=abc', '/token=abc/ws?token=[REDACTED]'],
    ['http://chat.example/ws?%74oken=abc', 'http://chat.example/ws?%74oken=[REDACTED]']
  ]
  for (const [url, expected] of cases) assert.equal(redactUrl(url), expected, url)
})

/** mulberry32: a seeded generator, so a failing URL can be found again. */
function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('redactUrl removes whatever Fastify\'s own query parser reads as token, over generated URLs', async (t) => {
  const app = Fastify()
  app.get('/ws', async (request) => request.query)
  const server = await listen(t, app)
  const port = Number(new URL(server.httpUrl).port)
  const agent = new Agent({ keepAlive: true, maxSockets: 4 })
  t.after(() => agent.destroy())
  const parsed = async (path: string): Promise<Record<string, string | string[]>> => await new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, agent }, (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => resolve(JSON.parse(body)))
    }).on('error', reject).end()
  })

  const random = seeded(20_251)
  const pick = <T>(from: T[]): T => from[Math.floor(random() * from.length)] as T
  const pieces = ['t', 'o', 'k', 'e', 'n', 'T', 'K', '%74', '%6B', '%6b', '%54', '%', '+', '=', '#', '?', 'x', '%7', '%E2%84%AA', '%ZZ', '%FF', '%26', '%3D']
  const keys = ['token', 'TOKEN', '%74oken', 'to%6Ben', 'tok%65n', '%74%6F%6B%65%6E', '%54%4F%4B%45%4E']
  const noise = (max: number): string => Array.from({ length: Math.floor(random() * max) }, () => pick(pieces)).join('')
  let sent = 0
  for (let n = 0; n < 1_500; n++) {
    const pairs = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, i) => {
      const key = random() < 0.6 ? pick(keys) + (random() < 0.2 ? noise(2) : '') : noise(4)
      return `${key}=${noise(3)}V${n}x${i}V${noise(3)}`
    })
    const path = `/ws${random() < 0.8 ? '?' : '#'}${noise(3)}${pairs.join('&')}`
    const token = [(await parsed(path)).token ?? []].flat()
    const carried = token.flatMap((value) => [...value.matchAll(/V\d+x\d+V/g)].map((match) => match[0]))
    if (carried.length === 0) continue
    sent++
    const redacted = redactUrl(path)
    assert.ok(redacted.startsWith('/ws?') || redacted.startsWith('/ws#'), path)
    for (const value of carried) assert.ok(!redacted.includes(value), `${path} => ${redacted} keeps ${value}`)
  }
  assert.ok(sent > 500, `enough generated URLs carried a token to Fastify (${sent})`)
})

test('log text: URLs quoted in a message or an error are redacted like the request line', async (t) => {
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: loggerOptions(loadConfig({ LOG_LEVEL: 'info' }), stream) })
  t.after(() => app.close())
  app.log.info('Route GET:/nope?to%6Ben=abc not found')
  app.log.child({ reqId: 'r' }).warn({ err: new Error('Reply was already sent in the "/ws?%74oken=abc" (GET) route') }, 'twice')
  assert.equal(logs[0]?.msg, 'Route GET:/nope?to%6Ben=[REDACTED] not found')
  const err = logs[1]?.err as { message: string, stack: string }
  assert.equal(err.message, 'Reply was already sent in the "/ws?%74oken=[REDACTED]" (GET) route')
  assert.match(err.stack, /^Error: Reply was already sent in the "\/ws\?%74oken=\[REDACTED\]" \(GET\) route\n/)
  assert.ok(!JSON.stringify(logs).includes('abc'))

  assert.equal(redactUrlsInText('Route GET:/nope?%74oken=abc not found'), 'Route GET:/nope?%74oken=[REDACTED] not found')
  assert.equal(redactUrlsInText('in the "/ws#token=abc" (GET) route'), 'in the "/ws#token=[REDACTED]" (GET) route')
  assert.equal(redactUrlsInText('a ?token=one and b?to%6Ben=two'), 'a ?token=[REDACTED] and b?to%6Ben=[REDACTED]')
  const plain = 'ws.open'
  assert.equal(redactUrlsInText(plain), plain)
})

test('ws.authentication_failed: a verifier\'s message that quotes the token is logged without it', async (t) => {
  const token = sign({ sub: 'quoted' })
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(realtime, {
    drainMs: 50,
    authenticate: (_request, offered) => {
      throw new Error(`cannot verify ${String(offered)}, signature ${String(offered?.split('.')[2])}`)
    }
  })
  app.wsRoute('/ws')
  const server = await listen(t, app, logs)
  assert.equal((await upgradeStatus(`${server.wsUrl}/ws`, { authorization: `Bearer ${token}` })).status, 401)
  const failed = logs.find((line) => line.msg === 'ws.authentication_failed')
  assert.match(String((failed?.err as { message?: string } | undefined)?.message), /^cannot verify \[REDACTED\], signature \[REDACTED\]$/)
  assert.deepEqual(leaked(JSON.stringify(logs), [token]), [])
})

test('with @fastify/otel and no hook of the app\'s own, upgrade spans carry the path without the token', async (t) => {
  exporter.reset()
  const token = sign({ sub: 'span' })
  const app = Fastify()
  await app.register(new FastifyOtelInstrumentation().plugin())
  await app.register(realtime, { drainMs: 50, authenticate: (_request, offered) => offered === token ? { id: 'span' } : undefined })
  app.wsRoute('/ws')
  const server = await listen(t, app)
  const port = Number(new URL(server.httpUrl).port)
  await TestClient.connect(t, `${server.wsUrl}/ws?%74oken=${token}`)
  assert.equal(await rawUpgrade(port, `/ws#token=${token}`), 101)
  assert.equal(await rawUpgrade(port, `/ws?to%6Ben=${token}x`), 401)
  assert.equal((await fetch(`${server.httpUrl}/ws?token=${token}`)).status, 426)
  await eventually(() => exporter.getFinishedSpans().filter((span) => span.name === 'request').length === 4, 2_000, 'the four request spans')
  const requests = exporter.getFinishedSpans().filter((span) => span.name === 'request')
  assert.deepEqual(requests.map((span) => span.attributes['url.path']), ['/ws', '/ws', '/ws', '/ws'])
  assert.deepEqual(requests.map((span) => span.attributes['http.response.status_code']).sort(), [101, 101, 401, 426])
  const exported = exporter.getFinishedSpans().map(({ name, attributes, events, status, links }) => ({ name, attributes, events, status, links }))
  assert.ok(exported.length > 4, 'hook spans too')
  assert.deepEqual(leaked(JSON.stringify(exported), [token]), [])
})

interface Received { traces: string[], logs: string[], other: string[] }

/** Loopback stand-ins for the OTLP/HTTP traces endpoint and Loki's push API: they keep the raw bodies. */
async function startReceiver (t: TestContext): Promise<{ url: string, received: Received }> {
  const received: Received = { traces: [], logs: [], other: [] }
  const server = createServer((request: IncomingMessage, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      const traces = request.method === 'POST' && request.url === '/v1/traces'
      if (traces) received.traces.push(body)
      else if (request.method === 'POST' && request.url === '/loki/api/v1/push') received.logs.push(body)
      else received.other.push(`${request.method} ${request.url}`)
      response.writeHead(traces ? 200 : 204, { 'content-type': 'application/json' }).end(traces ? '{}' : undefined)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => server.close())
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, received }
}

interface OtlpSpan { name: string, attributes: Array<{ key: string, value: Record<string, unknown> }> }

test('example app: tokens in every encoding and place authenticate, and reach no log line, Loki push or span', async (t) => {
  const receiver = await startReceiver(t)
  const app = await startAppProcess(t, {
    LOG_LEVEL: 'trace',
    AUTH_SECRET: SECRET,
    WS_DRAIN_MS: '50',
    WS_ALLOWED_ORIGINS: 'https://chat.example',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    LOKI_URL: receiver.url
  })
  const wsUrl = app.url.replace('http', 'ws')
  const port = Number(new URL(app.url).port)
  const tokens: string[] = []
  const tokenFor = (sub: string): string => { const token = sign({ sub }); tokens.push(token); return token }

  // These authenticate: each connection's identity is its token's subject.
  const plain = await TestClient.connect(t, `${wsUrl}/ws?token=${tokenFor('query-plain')}`)
  await TestClient.connect(t, `${wsUrl}/ws?%74oken=${tokenFor('query-escaped-t')}`)
  await TestClient.connect(t, `${wsUrl}/ws?room=lobby&to%6Ben=${tokenFor('query-escaped-k')}`)
  await TestClient.connect(t, `${wsUrl}/ws?%74%6F%6B%65%6E=${tokenFor('query-escaped-all')}`)
  await TestClient.connect(t, `${wsUrl}/ws`, { headers: { authorization: `Bearer ${tokenFor('header')}` } })
  await TestClient.connect(t, `${wsUrl}/ws`, { protocols: ['realtime.v1', `bearer.${tokenFor('subprotocol')}`] })
  assert.equal(await rawUpgrade(port, `/ws#token=${tokenFor('fragment')}`), 101)
  assert.equal((await plain.request('echo', { text: 'traced' })).type, '$reply')

  // These do not: Fastify's query keys are case-sensitive, and the rest are refused.
  assert.equal(await rawUpgrade(port, `/ws?TOKEN=${tokenFor('upper')}`), 401)
  assert.equal(await rawUpgrade(port, `/ws?%54OKEN=${tokenFor('upper-escaped')}`), 401)
  assert.equal(await rawUpgrade(port, `/ws?token=${tokenFor('value-with-hash')}#x`), 401)
  const forged = forge({ sub: 'forged' })
  tokens.push(forged)
  assert.equal(await rawUpgrade(port, `/ws?to%6Ben=${forged}`), 401)
  assert.equal(await rawUpgrade(port, '/ws', { authorization: `Bearer ${forged}` }), 401)
  assert.equal(await rawUpgrade(port, '/ws', { 'sec-websocket-protocol': `realtime.v1, bearer.${forged}` }), 401)
  assert.equal(await rawUpgrade(port, `/ws?%74oken=${tokenFor('origin')}`, { origin: 'https://evil.example' }), 403)
  assert.equal(await rawUpgrade(port, `/ws?to%6Ben=${tokenFor('subprotocol-refused')}`, { 'sec-websocket-protocol': 'chat.v9' }), 400)
  assert.equal(await rawUpgrade(port, `/ws/?%74oken=${tokenFor('not-found')}`), 404)
  assert.equal(await rawUpgrade(port, `/ws/#token=${tokenFor('not-found-fragment')}`), 404)
  assert.equal((await fetch(`${app.url}/ws?to%6Ben=${tokenFor('no-upgrade')}`)).status, 426)

  // SIGTERM drains and flushes both exporters before the process exits.
  await eventually(() => (app.output().match(/"msg":"ws.open"/g) ?? []).length === 7, 5_000, 'the seven ws.open lines')
  app.child.kill('SIGTERM')
  const [exitCode] = await once(app.child, 'exit')
  assert.equal(exitCode, 0)
  assert.deepEqual(receiver.received.other, [])

  const lines = app.output().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>)
  const opened = lines.filter((line) => line.msg === 'ws.open').map((line) => line.identity).sort()
  assert.deepEqual(opened, ['fragment', 'header', 'query-escaped-all', 'query-escaped-k', 'query-escaped-t', 'query-plain', 'subprotocol'])
  assert.deepEqual(leaked(app.output(), tokens), [], 'stdout')

  assert.ok(receiver.received.logs.some((body) => body.includes('ws.open')), 'logs were pushed to Loki')
  assert.deepEqual(leaked(receiver.received.logs.join('\n'), tokens), [], 'Loki pushes')

  assert.ok(receiver.received.traces.length > 0, 'spans were exported')
  assert.deepEqual(leaked(receiver.received.traces.join('\n'), tokens), [], 'exported spans')

  // The lines and spans are there, redacted, rather than missing.
  const spans = receiver.received.traces.flatMap((body) => (JSON.parse(body) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: OtlpSpan[] }> }> })
    .resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans)))
  const status = (span: OtlpSpan): unknown => Object.values(span.attributes.find((entry) => entry.key === 'http.response.status_code')?.value ?? {})[0]
  const upgrades = spans.filter((span) => span.name === 'GET /ws')
  assert.deepEqual(upgrades.map(status).map(Number).sort(), [101, 101, 101, 101, 101, 101, 101, 400, 401, 401, 401, 401, 401, 401, 403, 426])
  assert.ok(spans.some((span) => span.name === 'ws echo'), 'message spans were exported')
  assert.deepEqual(spans.filter((span) => span.name === 'GET /ws/').map(status).map(Number), [404, 404], 'the 404s were traced')
  const urls = lines.filter((line) => line.msg === 'incoming request').map((line) => (line.req as { url: string }).url)
  for (const url of ['/ws?%74oken=[REDACTED]', '/ws#token=[REDACTED]', '/ws?TOKEN=[REDACTED]', '/ws?token=[REDACTED]']) assert.ok(urls.includes(url), url)
  assert.ok(lines.some((line) => line.msg === 'Route GET:/ws/?%74oken=[REDACTED] not found'), 'Fastify\'s 404 line, redacted')
})
