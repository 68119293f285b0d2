import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { DiagnosticSeverity, Parser, type OperationInterface } from '@asyncapi/parser'
import Fastify from 'fastify'
import { Type } from 'typebox'
import { parse as parseYaml } from 'yaml'
import { EchoData, EchoReply, ChatMessage, MemberInfo, SayData, SayReply } from '../../app/chat-route.js'
import realtime, { asyncApiYaml, type AsyncApiDocument } from '../../plugin/index.js'
import { startApp } from '../helpers/app.js'

// The parser's only remark on a correct 3.0.0 document is that 3.1.0 exists.
const parser = new Parser({ ruleset: { extends: [], rules: { 'asyncapi-latest-version': 'off' } } })

/** Errors and warnings the AsyncAPI parser reports, each once. */
async function problemsOf (document: unknown): Promise<string[]> {
  const diagnostics = await parser.validate(JSON.stringify(document))
  return [...new Set(diagnostics.filter((d) => d.severity <= DiagnosticSeverity.Warning).map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`))]
}

const json = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema))
type Payload = { properties: Record<string, unknown>, required: string[] }
const payloadOf = (document: AsyncApiDocument, component: string): Payload =>
  (document.components.messages[component] as { payload: Payload }).payload

test('the example app serves an AsyncAPI 3.0 document the parser accepts, with every message, event, error and close code', async (t) => {
  const server = await startApp(t, { AUTH_SECRET: 'a-secret-of-at-least-32-characters!!' })
  const response = await fetch(`${server.httpUrl}/asyncapi.json`)
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /application\/json/)
  const document = await response.json() as AsyncApiDocument
  assert.deepEqual(await problemsOf(document), [])

  const { document: parsed } = await parser.parse(JSON.stringify(document))
  assert.ok(parsed !== undefined)
  assert.equal(parsed.version(), '3.0.0')
  assert.equal(document.info.title, 'fastify-realtime chat example')
  // The server that answered, with the bearer scheme the app's AUTH_SECRET turns on.
  const host = new URL(server.httpUrl).host
  assert.deepEqual(document.servers?.this, { host, protocol: 'ws', description: 'The server that served this document.', security: [{ $ref: '#/components/securitySchemes/bearer' }] })

  const channel = parsed.channels().get('ws')!
  assert.equal(channel.address(), '/ws')
  const binding = channel.bindings().get('ws')!
  assert.equal(binding.version(), '0.1.0')
  const upgrade = binding.value() as { headers: { properties: Record<string, unknown> }, query: { properties: Record<string, unknown> } }
  assert.ok('Authorization' in upgrade.headers.properties && 'Sec-WebSocket-Protocol' in upgrade.headers.properties)
  assert.ok('token' in upgrade.query.properties)

  // Client messages with their TypeBox schemas, each a receive operation replied to by its
  // $reply or $error.
  for (const [type, data, reply] of [['echo', EchoData, EchoReply], ['say', SayData, SayReply]] as const) {
    const payload = payloadOf(document, `ws.message.${type}`)
    assert.deepEqual(payload.properties.type, { type: 'string', const: type })
    assert.deepEqual(payload.properties.data, json(data))
    assert.deepEqual(payload.required, ['type', 'data'])
    assert.deepEqual(payloadOf(document, `ws.message.${type}.reply`).properties.data, json(reply))
    const operation: OperationInterface = parsed.operations().get(`ws.receive.message.${type}`)!
    assert.ok(operation.isReceive())
    assert.deepEqual(operation.reply()!.messages().all().map((message) => message.name()), ['$reply', '$error'])
  }
  // Events the server pushes, and the protocol's own frames.
  assert.deepEqual(payloadOf(document, 'ws.event.message').properties.data, json(ChatMessage))
  assert.ok(parsed.operations().get('ws.send.event.message')!.isSend())
  for (const command of ['subscribe', 'unsubscribe', 'presence', 'refresh', 'ping']) {
    assert.ok(parsed.operations().get(`ws.receive.protocol.${command}`)!.isReceive(), command)
  }
  // Presence: the diffs carry each member's info as the route's schema declares it.
  assert.ok(parsed.operations().get('ws.send.protocol.presence.diff')!.isSend())
  const diff = payloadOf(document, 'ws.presence.diff').properties.data as { properties: { joins: { items: { properties: { info: unknown } } } } }
  assert.deepEqual(diff.properties.joins.items.properties.info, json(MemberInfo))
  assert.ok('presence' in (payloadOf(document, 'protocol.subscribe').properties.data as Payload).properties)
  assert.ok(parsed.operations().get('ws.send.protocol.welcome')!.isSend())
  const error = document.components.messages['protocol.error'] as { 'x-error-codes': Record<string, string>, description: string }
  for (const code of ['INVALID_JSON', 'VALIDATION_FAILED', 'RATE_LIMITED', 'UNAVAILABLE']) {
    assert.ok(code in error['x-error-codes'] && error.description.includes(code), code)
  }
  const closeCodes = document.channels.ws!['x-close-codes'] as Record<string, { meaning: string }>
  assert.match(closeCodes['1012']!.meaning, /drain/)
  assert.match(closeCodes['4001']!.meaning, /slow consumer/)
  assert.match(String(document.channels.ws!.description), /\| 4003 \| credentials expired/)

  // The YAML is the same document.
  const yaml = await fetch(`${server.httpUrl}/asyncapi.yaml`)
  assert.match(yaml.headers.get('content-type') ?? '', /application\/yaml/)
  assert.deepEqual(parseYaml(await yaml.text()), document)
})

test('a change to a route\'s schema changes the document; routes, binary frames and opt-out', async () => {
  const build = async (maxLength: number, options: Parameters<typeof realtime>[1] = {}) => {
    const app = Fastify()
    await app.register(realtime, { metrics: false, ...options })
    app.wsRoute('/v1/chat:live', { events: { tick: Type.Object({ n: Type.Integer() }) } })
      .message('note:add', { data: Type.Object({ text: Type.String({ maxLength }) }) }, () => {})
    app.wsRoute('/files', { binary: () => {} })
    await app.ready()
    return app
  }
  const short = await build(10)
  const long = await build(20, { asyncapi: false, allowedOrigins: ['https://chat.example.com'] })
  const [a, b] = [short.realtime.asyncApi(), long.realtime.asyncApi()]
  assert.deepEqual(await problemsOf(a), [])
  // Keys are made safe for AsyncAPI; the address stays the URL.
  assert.equal(a.channels['v1_chat_live']!.address, '/v1/chat:live')
  const data = (document: AsyncApiDocument) => payloadOf(document, 'v1_chat_live.message.note_add').properties.data as { properties: { text: { maxLength: number } } }
  assert.equal(data(a).properties.text.maxLength, 10)
  assert.equal(data(b).properties.text.maxLength, 20)
  assert.notDeepEqual(a, b)
  // A message without a reply schema is answered by a $reply without data; a route without a
  // topic policy has no $subscribe; a binary route receives binary frames.
  assert.deepEqual(payloadOf(a, 'v1_chat_live.message.note_add.reply').required, ['type', 'id'])
  assert.equal(a.operations['v1_chat_live.receive.protocol.subscribe'], undefined)
  assert.ok(a.operations['files.receive.protocol.binary'] !== undefined)
  // The upgrade binding names only what the plugin checks: no credentials without
  // `authenticate` (the example app's test has them), Origin only with `allowedOrigins`.
  const upgradeHeaders = (document: AsyncApiDocument): string[] =>
    Object.keys((document.channels.files!.bindings as { ws: { headers: { properties: object } } }).ws.headers.properties)
  assert.deepEqual(upgradeHeaders(a), ['Sec-WebSocket-Protocol'])
  assert.deepEqual(upgradeHeaders(b), ['Sec-WebSocket-Protocol', 'Origin'])
  assert.equal(a.components.securitySchemes, undefined)
  // Build-time export without serving: servers as given; the YAML parses back to the same.
  const withServers = long.realtime.asyncApi({ servers: { production: { host: 'chat.example.com', protocol: 'wss' } } })
  assert.deepEqual(withServers.servers, { production: { host: 'chat.example.com', protocol: 'wss' } })
  assert.deepEqual(await problemsOf(withServers), [])
  assert.deepEqual(parseYaml(asyncApiYaml(withServers)), withServers)
  assert.equal((await short.inject('/asyncapi.json')).statusCode, 200)
  assert.equal((await long.inject('/asyncapi.json')).statusCode, 404)
  assert.equal((await long.inject('/asyncapi.yaml')).statusCode, 404)
  await Promise.all([short.close(), long.close()])
})

test('npm run asyncapi exports the example app\'s document at build time, with the server it is given', async (t) => {
  const directory = await mkdtemp(join(tmpdir(), 'asyncapi-'))
  t.after(async () => await rm(directory, { recursive: true, force: true }))
  const out = join(directory, 'asyncapi.json')
  const scripts = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>
  const [program, ...args] = scripts.asyncapi!.split(' ')
  assert.equal(program, 'node')
  const child = spawn(process.execPath, [...args, out], { env: { ...process.env, ASYNCAPI_SERVER: 'wss://chat.example.com' }, stdio: 'inherit' })
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
  const document = JSON.parse(await readFile(out, 'utf8')) as AsyncApiDocument
  assert.deepEqual(await problemsOf(document), [])
  assert.deepEqual(document.servers, { production: { host: 'chat.example.com', protocol: 'wss' } })
  assert.deepEqual(payloadOf(document, 'ws.message.say').properties.data, json(SayData))
})

test('a type named like another\'s reply keeps its own message; bad AsyncAPI options are refused at register', async () => {
  const app = Fastify()
  await app.register(realtime, { metrics: false })
  app.wsRoute('/ws')
    .message('foo.reply', { data: Type.Object({ a: Type.String() }) }, () => {})
    .message('foo', { data: Type.Object({ b: Type.Number() }), reply: Type.Object({ c: Type.Boolean() }) }, () => ({ c: true }))
  await app.ready()
  const document = app.realtime.asyncApi()
  assert.deepEqual(await problemsOf(document), [])
  // Follows operation → channel message → component, in the document as served.
  const resolve = (pointer: string): any => pointer.slice(2).split('/').reduce((node: any, key) => node[key], document)
  const payloadOf = (reference: { $ref: string }): unknown => resolve(resolve(reference.$ref).$ref).payload
  const operation = (key: string): any => document.operations[key]
  const payloadsOf = (key: string): unknown[] => operation(key).messages.map(payloadOf)
  const repliesOf = (key: string): unknown[] => operation(key).reply.messages.map(payloadOf)
  assert.deepEqual((payloadsOf('ws.receive.message.foo.reply')[0] as Payload).properties.data, json(Type.Object({ a: Type.String() })))
  assert.deepEqual((payloadsOf('ws.receive.message.foo')[0] as Payload).properties.data, json(Type.Object({ b: Type.Number() })))
  assert.deepEqual((repliesOf('ws.receive.message.foo')[0] as Payload).properties.data, json(Type.Object({ c: Type.Boolean() })))
  assert.equal((repliesOf('ws.receive.message.foo.reply')[0] as Payload).properties.data, undefined)
  assert.throws(() => app.realtime.asyncApi({ servers: { production: { host: '', protocol: 'wss' } } }), { code: 'FRT_ERR_INVALID_OPTION' })
  await app.close()

  for (const asyncapi of [null, true, { servers: null }, { servers: [] }, { info: 5 }, { info: { title: '' } }, { servers: { a: { host: 'h', protocol: 'http' } } }]) {
    await assert.rejects(async () => await Fastify().register(realtime, { asyncapi } as never).ready(), { code: 'FRT_ERR_INVALID_OPTION' }, JSON.stringify(asyncapi))
  }
})
