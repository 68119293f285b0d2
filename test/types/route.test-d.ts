/*
 * Type tests, checked by `tsc` in `npm test`: the file must compile (inference works) and every
 * `@ts-expect-error` line must be an error (wrong payloads are rejected). Never run.
 */
import Fastify from 'fastify'
import { Type, type Static } from 'typebox'
import type { Sampler } from '@opentelemetry/api'
import { AlwaysOnSampler } from '@opentelemetry/sdk-trace-base'
import realtime, { RealtimeError, realtimeSampler, type AsyncApiDocument, type MessageContext, type RealtimeConnection, type TopicPosition } from '../../plugin/index.js'
import type { ChatRoute } from '../../app/chat-route.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | undefined { return undefined }

const Note = Type.Object({ n: Type.Integer(), label: Type.Optional(Type.String()) })
const Text = Type.Object({ text: Type.String() })

const app = Fastify()
await app.register(realtime, { maxPayload: 1024, traceSampleRatio: 0.01 })
// @ts-expect-error the ratio is a number
await Fastify().register(realtime, { traceSampleRatio: '0.01' })
// An SDK sampler in, an API sampler out: it goes wherever the SDK takes one.
expectType<Equal<ReturnType<typeof realtimeSampler>, Sampler>>()
realtimeSampler(new AlwaysOnSampler())

const route = app.wsRoute('/ws', {
  events: { note: Note },
  authorizeSubscribe: (topic, connection) => {
    expectType<Equal<typeof topic, string>>()
    expectType<Equal<typeof connection, RealtimeConnection<{ note: typeof Note }>>>()
    return topic.startsWith('room:')
  }
})
  .message('echo', { data: Text, reply: Text }, (data, context) => {
    expectType<Equal<typeof data, { text: string }>>()
    expectType<Equal<typeof context, MessageContext<{ note: typeof Note }>>>()
    context.connection.send('note', { n: 1 })
    context.connection.send('note', { n: 1, label: 'x' })
    // @ts-expect-error an event the route does not declare
    context.connection.send('other', { n: 1 })
    // @ts-expect-error an event payload of the wrong type
    context.connection.send('note', { n: '1' })
    // @ts-expect-error a required field missing
    context.connection.send('note', { label: 'x' })
    return { text: data.text }
  })
  .message('publishes', { data: Type.Object({ room: Type.String() }), reply: Type.Object({ offset: Type.String() }) }, async (data, { publish }) => {
    const position = await publish(`room:${data.room}`, 'note', { n: 2 })
    expectType<Equal<typeof position, TopicPosition>>()
    // @ts-expect-error published data must match the event's schema
    await publish('room:x', 'note', { n: 'two' })
    return { offset: position.offset }
  })
  .message('silent', {}, (data) => {
    expectType<Equal<typeof data, undefined>>()
  })
  .message('refuses', { data: Text }, () => {
    throw new RealtimeError('FORBIDDEN', 'no')
  })

// @ts-expect-error the handler's reply must match the reply schema
route.message('wrongReply', { reply: Text }, () => ({ text: 42 }))
// @ts-expect-error a handler with a reply schema must return a reply
route.message('missingReply', { reply: Text }, () => {})
// @ts-expect-error data is typed from the schema: no such field
route.message('wrongData', { data: Text }, (data) => { data.missing.toString() })
// @ts-expect-error async handlers are held to the reply schema too
route.message('asyncWrongReply', { reply: Text }, async () => ({ text: false }))

// The route's type records every message and event, for typed clients.
type Messages = typeof route.types.messages
expectType<Equal<keyof Messages, 'echo' | 'publishes' | 'silent' | 'refuses'>>()
expectType<Equal<Messages['echo'], { data: typeof Text, reply: typeof Text }>>()
expectType<Equal<keyof typeof route.types.events, 'note'>>()

await route.publish('room:a', 'note', { n: 3 })
// @ts-expect-error publishing an undeclared event
await route.publish('room:a', 'unknown', { n: 3 })

// A route without events can push nothing.
app.wsRoute('/quiet').message('x', {}, (_data, { connection }) => {
  // @ts-expect-error no events declared
  connection.send('note', { n: 1 })
})

// The example app's exported route type carries its messages.
expectType<Equal<keyof ChatRoute['types']['messages'], 'echo' | 'say'>>()
expectType<Equal<keyof ChatRoute['types']['events'], 'message' | 'notice'>>()

// Plugin options are typed.
// @ts-expect-error maxPayload is a number
await app.register(realtime, { maxPayload: '64k' })

// Connection management options and hooks are typed.
await app.register(realtime, {
  idleTimeoutMs: 60_000,
  maxConnections: 10_000,
  maxBufferedBytes: 1 << 20,
  upgradeRateLimit: 120,
  allowedOrigins: ['https://app.example'],
  drainMs: 5_000,
  authenticate: async (request, token) => {
    expectType<Equal<typeof token, string | undefined>>()
    return token === undefined ? undefined : { id: request.ip, expiresAt: Date.now() + 60_000, role: 'admin' }
  }
})
// @ts-expect-error an identity needs an id
await app.register(realtime, { authenticate: () => ({ expiresAt: 1 }) })
app.wsRoute('/guarded', {
  authorizeMessage: (type, data, connection) => {
    expectType<Equal<typeof type, string>>()
    expectType<Equal<typeof data, unknown>>()
    return connection.identity?.role === 'admin'
  }
}).message('typing', { messagesPerSecond: 2 }, (data) => {
  expectType<Equal<typeof data, undefined>>()
})
expectType<Equal<ReturnType<typeof app.realtime.drain>, Promise<void>>>()

// The AsyncAPI document: options are checked, the result is the document's type.
expectType<Equal<ReturnType<typeof app.realtime.asyncApi>, AsyncApiDocument>>()
app.realtime.asyncApi({ servers: { production: { host: 'chat.example.com', protocol: 'wss' } } })
// @ts-expect-error a WebSocket server's protocol is ws or wss
app.realtime.asyncApi({ servers: { production: { host: 'chat.example.com', protocol: 'http' } } })
await Fastify().register(realtime, { asyncapi: false })
await Fastify().register(realtime, { asyncapi: { info: { title: 'chat', version: '2.0.0' } } })
// @ts-expect-error `true` is not an option: the document is served unless it is `false`
await Fastify().register(realtime, { asyncapi: true })

// Presence: the member function must return the info schema's type; the route carries it for clients.
export const withPresence = app.wsRoute('/presence', {
  authorizeSubscribe: () => true,
  presence: {
    info: Type.Object({ name: Type.String(), away: Type.Boolean() }),
    member: (connection, topic) => ({ name: String(connection.identity?.id ?? topic), away: false }),
    authorize: async (topic) => topic.startsWith('room:')
  }
})
expectType<Equal<Static<typeof withPresence.types.presence>, { name: string, away: boolean }>>()
app.wsRoute('/presence-wrong', {
  presence: {
    info: Type.Object({ name: Type.String() }),
    // @ts-expect-error the member's info must match its schema
    member: () => ({ name: 1 }),
    authorize: () => true
  }
})
await Fastify().register(realtime, { presenceWindowMs: 50 })
