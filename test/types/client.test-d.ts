/*
 * Type tests for the client, checked by `tsc` in `npm test` and never run: the client typed by
 * the example app's route accepts its messages and payloads and rejects anything else.
 */
import { WebSocket } from 'ws'
import { ClientErrorCode, RealtimeClient, RealtimeClientError, type ClientErrorCodeName, type ClientState, type PresenceInfo, type PresenceReply, type PresenceUpdate } from '../../plugin/client/index.js'
import type { ChatRoute } from '../../app/chat-route.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
function expectType<T extends true> (): T | undefined { return undefined }

const client = new RealtimeClient<ChatRoute>('ws://localhost:3000/ws', { WebSocket })

expectType<Equal<Awaited<ReturnType<typeof client.request<'echo'>>>, { text: string }>>()
expectType<Equal<Awaited<ReturnType<typeof client.request<'say'>>>, { offset: string }>>()
await client.request('say', { room: 'lobby', text: 'hello' }, { timeoutMs: 1_000 })
// @ts-expect-error a message type the route does not declare
await client.request('shout', { text: 'hi' })
// @ts-expect-error a payload of the wrong type
await client.request('echo', { text: 1 })
// @ts-expect-error a required field missing
await client.request('say', { text: 'no room' })
// @ts-expect-error data is required for echo
await client.request('echo')

client.send('say', { room: 'lobby', text: 'fire and forget' })
// @ts-expect-error send is typed too
client.send('say', { room: 1, text: 'x' })

await client.subscribe('room:lobby', (event) => {
  expectType<Equal<typeof event.event, 'message' | 'notice'>>()
  // The event's name tells its payload apart.
  if (event.event === 'message') expectType<Equal<typeof event.data, { room: string, text: string, from: string, ts: number }>>()
  else expectType<Equal<typeof event.data, { text: string }>>()
  expectType<Equal<typeof event.offset, string>>()
}, { onRecoveryFailed: (topic) => { expectType<Equal<typeof topic, string>>() } })
client.onServerEvent((event) => { expectType<Equal<typeof event.event, 'message' | 'notice'>>() })

client.onEvent('message', (data) => { expectType<Equal<typeof data.ts, number>>() })
// @ts-expect-error an event the route does not declare
client.onEvent('other', () => {})

client.onState((state) => { expectType<Equal<typeof state, ClientState>>() })
try {
  await client.request('echo', { text: 'x' })
} catch (err) {
  if (err instanceof RealtimeClientError) {
    const code: string = err.code
    expectType<Equal<typeof err.code, ClientErrorCodeName | (string & {})>>()
    if (err.code === ClientErrorCode.TIMEOUT || code === 'FORBIDDEN') throw err
  }
}

// Untyped, any route: anything goes, for quick scripts.
const loose = new RealtimeClient('ws://localhost:3000/ws')
await loose.request('anything', { at: 'all' })

// Presence is typed from the route's info schema.
await client.subscribe('room:lobby', () => {}, {
  presence: (update) => {
    expectType<Equal<typeof update, PresenceUpdate<{ name: string }>>>()
    const names: string[] = [...update.members.values()].flatMap((member) => [...member.connections.values()].map((info) => info.name))
    // @ts-expect-error the info has no such field
    const ages: number[] = [...update.members.values()].flatMap((member) => [...member.connections.values()].map((info) => info.age))
    console.log(names, ages)
  }
})
expectType<Equal<Awaited<ReturnType<typeof client.presence>>, PresenceReply<{ name: string }>>>()
await client.presence('room:lobby', { limit: 10 })
expectType<Equal<PresenceInfo<ChatRoute>, { name: string }>>()
// @ts-expect-error count is a boolean
await client.presence('room:lobby', { count: 'yes' })
