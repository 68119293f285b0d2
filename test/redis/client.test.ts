import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect as tcpConnect, type Socket } from 'node:net'
import { test } from 'node:test'
import { createSigner } from 'fast-jwt'
import { WebSocket } from 'ws'
import type { ChatRoute } from '../../app/chat-route.js'
import { backoffDelay, closePolicy, RealtimeClient, RealtimeClientError, type ClientState, type PresenceUpdate } from '../../plugin/client/index.js'
import { startApp } from '../helpers/app.js'
import { startRedis, freePort } from '../helpers/redis.js'
import { eventually, startServer } from '../helpers/server.js'

const FAST = { minMs: 20, maxMs: 200, factor: 2 }

function track (client: RealtimeClient<any>): ClientState[] {
  const states: ClientState[] = []
  client.onState((state) => states.push(state))
  return states
}

/** Nodes restarted under a client drain for 100 ms; each comes back on the port the client knows. */
const RESTART_ENV = { WS_DRAIN_MS: '100' }

test('backoff is full jitter under a growing ceiling; close codes map to the protocol table', () => {
  assert.equal(backoffDelay(0, { minMs: 100 }, () => 0.999), 99)
  assert.equal(backoffDelay(3, { minMs: 100, factor: 2 }, () => 0.5), 400)
  assert.equal(backoffDelay(30, { minMs: 100, maxMs: 5_000 }, () => 0.999), 4_995)
  assert.equal(backoffDelay(5, {}, () => 0), 0)
  const policies = Object.fromEntries([1000, 1001, 1002, 1003, 1006, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4002, 4003, 4200, 4600, 3000]
    .map((code) => [code, closePolicy(code)]))
  assert.deepEqual(policies, {
    1000: 'stop',
    1001: 'reconnect',
    1002: 'stop',
    1003: 'stop',
    1006: 'reconnect',
    1008: 'stop',
    1009: 'stop',
    1011: 'reconnect',
    1012: 'reconnect',
    1013: 'reconnect-later',
    4000: 'stop',
    4001: 'reconnect',
    4002: 'reconnect',
    4003: 'refresh-credentials',
    4200: 'reconnect',
    4600: 'stop',
    3000: 'reconnect'
  })
  assert.equal(closePolicy(4000, { reconnectOnIdle: true }), 'reconnect')
})

test('client against the example app: typed request/reply, $error as RealtimeClientError, subscribe, timeouts', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws').message('slow', {}, async () => { await new Promise((resolve) => setTimeout(resolve, 300)) })
  })
  const slow = new RealtimeClient(`${server.wsUrl}/ws`, { WebSocket })
  t.after(() => slow.close())
  await assert.rejects(slow.request('slow', undefined, { timeoutMs: 50 }), (err: RealtimeClientError) => err.code === 'TIMEOUT')

  const app = await startApp(t)
  const client = new RealtimeClient<ChatRoute>(`${app.wsUrl}/ws`, { WebSocket })
  t.after(() => client.close())
  assert.deepEqual(await client.request('echo', { text: 'typed' }), { text: 'typed' })
  assert.equal(client.state, 'open')
  const refused = await client.request('echo', { text: 5 as unknown as string }).catch((err: unknown) => err)
  assert.ok(refused instanceof RealtimeClientError)
  assert.equal(refused.code, 'VALIDATION_FAILED')
  const seen: string[] = []
  await client.subscribe('room:typed', (event) => seen.push(event.data.text))
  await client.request('say', { room: 'typed', text: 'one' })
  await eventually(() => seen.length === 1, 2_000, 'the event')
  await assert.rejects(client.subscribe('admin', () => {}), (err: RealtimeClientError) => err.code === 'FORBIDDEN')
  client.close()
  assert.equal(client.state, 'closed')
  await assert.rejects(client.request('echo', { text: 'after close' }), (err: RealtimeClientError) => err.code === 'CLOSED')
})

test('client with Redis: the server restarted under it (1012) → it reconnects and resumes without gaps or duplicates; sends queue meanwhile', async (t) => {
  const redis = await startRedis(t)
  const port = await freePort()
  let nodeA = await startApp(t, { ...RESTART_ENV, REDIS_URL: redis.url }, { port })
  const nodeB = await startApp(t, { ...RESTART_ENV, REDIS_URL: redis.url })
  const client = new RealtimeClient<ChatRoute>(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: FAST })
  t.after(() => client.close())
  const states = track(client)
  const received: string[] = []
  const offsets: string[] = []
  let recoveryFailed = 0
  await client.subscribe('room:resume', (event) => { received.push(event.data.text); offsets.push(event.offset) }, { onRecoveryFailed: () => { recoveryFailed++ } })
  const speaker = new RealtimeClient<ChatRoute>(`${nodeB.wsUrl}/ws`, { WebSocket })
  t.after(() => speaker.close())
  await speaker.request('say', { room: 'resume', text: 'before' })
  await eventually(() => received.length === 1, 2_000, 'the first event')

  await nodeA.app.realtime.drain()
  await nodeA.app.close()
  await eventually(() => client.state === 'reconnecting', 2_000, 'the client to notice')
  // Sent while node A is down: node B publishes, Redis keeps them.
  for (const text of ['while', 'node A', 'was down']) await speaker.request('say', { room: 'resume', text })
  assert.equal(client.send('say', { room: 'resume', text: 'queued by the client' }), true)
  nodeA = await startApp(t, { ...RESTART_ENV, REDIS_URL: redis.url }, { port })
  await eventually(() => received.length === 5, 5_000, 'the replay and the queued message')
  assert.deepEqual(received, ['before', 'while', 'node A', 'was down', 'queued by the client'])
  assert.equal(new Set(offsets).size, offsets.length, 'no duplicates')
  assert.equal(recoveryFailed, 0)
  // Each failed attempt reports `reconnecting` again (with its delay): collapse the repeats.
  assert.deepEqual(states.filter((state, i) => state !== states[i - 1]), ['open', 'reconnecting', 'open'])
})

test('client: a memory broker restarted under it loses history → onRecoveryFailed; 1008 stops it for good', async (t) => {
  const port = await freePort()
  const first = await startApp(t, RESTART_ENV, { port })
  const client = new RealtimeClient<ChatRoute>(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: FAST })
  t.after(() => client.close())
  const failed: string[] = []
  await client.subscribe('room:lost', () => {}, { onRecoveryFailed: (topic) => failed.push(topic) })
  await first.app.close()
  const second = await startApp(t, RESTART_ENV, { port })
  await eventually(() => failed.length === 1, 5_000, 'recovery to fail on a new epoch')
  assert.deepEqual(failed, ['room:lost'])
  assert.equal(client.state, 'open')

  const states = track(client)
  // The server closes for sustained abuse: reconnecting would fail the same way.
  const [socket] = [...second.app.websocketServer.clients]
  socket?.close(1008, 'policy')
  await eventually(() => client.state === 'closed', 2_000, 'the client to stop')
  assert.deepEqual(states, ['closed'])
})

test('client: a refused handshake backs off and retries; 4003 fetches new credentials and reconnects', async (t) => {
  const secret = 'a-client-test-secret-that-is-long-enough'
  const server = await startApp(t, { AUTH_SECRET: secret })
  const sign = createSigner({ key: secret, algorithm: 'HS256' })
  let calls = 0
  const client = new RealtimeClient<ChatRoute>(`${server.wsUrl}/ws`, {
    WebSocket,
    backoff: FAST,
    // The first token is refused (401): the client must back off and ask again.
    getToken: () => ++calls === 1 ? 'not-a-jwt' : sign({ sub: `user-${calls}`, exp: Math.floor(Date.now() / 1000) + (calls === 2 ? 1 : 60) })
  })
  t.after(() => client.close())
  const states = track(client)
  await eventually(() => client.state === 'open', 5_000, 'the client to get in')
  assert.equal(calls, 2)
  assert.ok(states.includes('reconnecting'))
  // The second token expires after a second: the server closes with 4003, the client asks for
  // a third token and is back in with it.
  await eventually(() => calls === 3 && client.state === 'open', 10_000, 'a new token after 4003, and the client back in')
  const reply = await client.request('say', { room: 'auth', text: 'who am I' })
  assert.ok(reply.offset)
})

test('client: a connection that goes silent is detected with $ping and replaced', async (t) => {
  // The server's own pings are slow here: what notices the silence is the client's $ping.
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { heartbeatMs: 60_000 })
  const target = new URL(server.httpUrl)
  // A TCP relay that can stop relaying: the connection stays open and nothing comes through.
  // The connections open when the network goes silent lose every byte; later ones pass, so a
  // reconnection made while the old connection is still being given up on gets through.
  const silenced = new Set<Socket>()
  const relays = new Set<Socket>()
  const relay = createServer((inbound) => {
    const outbound = tcpConnect(Number(target.port), target.hostname)
    relays.add(inbound)
    inbound.on('data', (chunk) => { if (!silenced.has(inbound)) outbound.write(chunk) })
    outbound.on('data', (chunk) => { if (!silenced.has(inbound)) inbound.write(chunk) })
    for (const [a, b] of [[inbound, outbound], [outbound, inbound]] as const) {
      a.on('close', () => b.destroy())
      a.on('error', () => b.destroy())
    }
  })
  relay.listen(0, '127.0.0.1')
  await once(relay, 'listening')
  t.after(() => { for (const socket of relays) socket.destroy(); relay.close() })
  const { port } = relay.address() as { port: number }

  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: FAST, pingIntervalMs: 100, deadAfterMs: 150 })
  t.after(() => client.close())
  await eventually(() => client.state === 'open', 2_000, 'open')
  const firstId = client.connectionId
  for (const socket of relays) silenced.add(socket)
  const states = track(client)
  await eventually(() => states.includes('reconnecting'), 5_000, 'the dead connection to be noticed')
  await eventually(() => client.state === 'open' && client.connectionId !== firstId, 5_000, 'a new connection')
})

test('client: after a restart, 60 subscriptions (half with presence, its members in each answer) come back within the message budget; a request that timed out in the queue is never sent', async (t) => {
  const port = await freePort()
  let server = await startApp(t, RESTART_ENV, { port })
  const client = new RealtimeClient<ChatRoute>(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: FAST })
  t.after(() => client.close())
  const rooms = Array.from({ length: 60 }, (_, i) => `r${i}`)
  const heard = new Set<string>()
  const errors: string[] = []
  const presenceReads = new Set<string>()
  for (const [i, room] of rooms.entries()) {
    await client.subscribe(`room:${room}`, (event) => { if (event.event === 'message') heard.add(event.data.room) }, {
      onError: (topic) => errors.push(topic),
      ...(i % 2 === 0 ? { presence: (update: PresenceUpdate<{ name: string }>) => { presenceReads.add(update.topic) } } : {})
    })
  }
  await server.app.close()
  await eventually(() => client.state === 'reconnecting', 2_000, 'the client to notice')
  await assert.rejects(client.request('say', { room: 'r0', text: 'too late' }, { timeoutMs: 50 }), (err: RealtimeClientError) => err.code === 'TIMEOUT')

  presenceReads.clear()
  server = await startApp(t, RESTART_ENV, { port })
  await eventually(() => client.state === 'open', 5_000, 'the client to reconnect')
  const speaker = new RealtimeClient<ChatRoute>(`ws://127.0.0.1:${port}/ws`, { WebSocket })
  t.after(() => speaker.close())
  // The default budget is 50 messages a second: 60 resubscriptions are paced, not refused, and
  // those with presence need no read of their own.
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  for (const room of rooms) {
    await speaker.request('say', { room, text: 'back' })
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  await eventually(() => heard.size === 60, 5_000, `all 60 rooms to deliver (got ${heard.size})`)
  await eventually(() => presenceReads.size === 30, 2_000, `the members of all 30 rooms with presence (got ${presenceReads.size})`)
  assert.deepEqual(errors, [])
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
  const says = /^ws_messages_received_total\{route="\/ws",type="say"\} (\d+)$/m.exec(metrics)?.[1]
  assert.equal(says, '60', 'the timed-out request never reached the server')
  const limited = /^ws_rate_limited_total\{route="\/ws",scope="message"\} (\d+)$/m.exec(metrics)?.[1]
  assert.equal(limited, '0', 'the resubscriptions were paced under the budget, not refused and retried')
})

test('client presence with Redis: members kept current across nodes; after its node restarts (1012) the client re-reads them, with who came and went meanwhile', async (t) => {
  const secret = 'a-presence-test-secret-that-is-long-enough'
  const sign = createSigner({ key: secret, algorithm: 'HS256' })
  const redis = await startRedis(t)
  const env = { ...RESTART_ENV, REDIS_URL: redis.url, AUTH_SECRET: secret, WS_PRESENCE_WINDOW_MS: '20' }
  const port = await freePort()
  let nodeA = await startApp(t, env, { port })
  const nodeB = await startApp(t, env)
  const as = (user: string, url: string): RealtimeClient<ChatRoute> => {
    const client = new RealtimeClient<ChatRoute>(url, { WebSocket, backoff: FAST, getToken: () => sign({ sub: user, exp: Math.floor(Date.now() / 1000) + 60 }) })
    t.after(() => client.close())
    return client
  }
  const namesIn = (update: PresenceUpdate<{ name: string }> | undefined): string[] =>
    [...(update?.members.values() ?? [])].map((member) => [...member.connections.values()][0]!.name).sort()
  const heard = { alice: [] as Array<PresenceUpdate<{ name: string }>>, bob: [] as Array<PresenceUpdate<{ name: string }>> }
  const alice = as('alice', `ws://127.0.0.1:${port}/ws`)
  const bob = as('bob', `${nodeB.wsUrl}/ws`)
  const carol = as('carol', `ws://127.0.0.1:${port}/ws`)
  await alice.subscribe('room:here', () => {}, { presence: (update) => heard.alice.push(update) })
  await bob.subscribe('room:here', () => {}, { presence: (update) => heard.bob.push(update) })
  await carol.subscribe('room:here', () => {})
  await eventually(() => namesIn(heard.alice.at(-1)).join() === 'alice,bob,carol' && namesIn(heard.bob.at(-1)).join() === 'alice,bob,carol', 3_000, 'everyone to see everyone')
  assert.deepEqual(heard.alice.flatMap((update) => update.joined.map((member) => member.user)).sort(), ['alice', 'bob', 'carol'], 'each joined once')

  carol.close()
  await eventually(() => namesIn(heard.alice.at(-1)).join() === 'alice,bob', 3_000, 'carol to leave')
  assert.deepEqual(heard.alice.at(-1)!.left.map((member) => member.user), ['carol'])

  // Alice's node restarts; dave arrives on the other node meanwhile.
  await nodeA.app.realtime.drain()
  await nodeA.app.close()
  await eventually(() => alice.state === 'reconnecting', 2_000, 'alice to notice')
  const dave = as('dave', `${nodeB.wsUrl}/ws`)
  await dave.subscribe('room:here', () => {})
  await eventually(() => namesIn(heard.bob.at(-1)).join() === 'bob,dave', 3_000, 'bob to see alice gone and dave come')
  const beforeRestart = heard.alice.length
  nodeA = await startApp(t, env, { port })
  await eventually(() => alice.state === 'open' && namesIn(heard.alice.at(-1)).join() === 'alice,bob,dave', 5_000, 'alice to re-read the room')
  const reread = heard.alice.slice(beforeRestart)
  assert.ok(reread.some((update) => update.joined.some((member) => member.user === 'dave')), 'dave, who came meanwhile, is among the joined')
  assert.deepEqual(await alice.presence('room:here', { count: true }), { topic: 'room:here', users: 3, connections: 3 })
  await eventually(() => namesIn(heard.bob.at(-1)).join() === 'alice,bob,dave', 3_000, 'bob to see alice back')
})

test('client with 10-second tokens: refreshes in-band ahead of each expiry and stays on one connection for 40 s', async (t) => {
  const secret = 'a-refresh-test-secret-that-is-long-enough'
  const sign = createSigner({ key: secret, algorithm: 'HS256' })
  const server = await startApp(t, { AUTH_SECRET: secret })
  const expiries: number[] = []
  const client = new RealtimeClient<ChatRoute>(`${server.wsUrl}/ws`, {
    WebSocket,
    getToken: () => {
      const exp = Math.floor(Date.now() / 1000) + 10
      expiries.push(exp)
      return sign({ sub: 'long-lived', exp })
    }
  })
  t.after(() => client.close())
  const states = track(client)
  await eventually(() => client.state === 'open', 5_000, 'the client to connect')
  const connectionId = client.connectionId
  await new Promise((resolve) => setTimeout(resolve, 40_000))
  assert.equal(client.connectionId, connectionId, 'the same connection throughout')
  assert.deepEqual([...states], ['open'], 'opened once: no reconnect, no close')
  assert.equal((await client.request('echo', { text: 'still here' })).text, 'still here')
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text()
  const refreshed = Number(/^ws_credential_refreshes_total\{outcome="ok"\} (\d+)$/m.exec(metrics)?.[1])
  assert.ok(refreshed >= 4, `${refreshed} refreshes in 40 s of 10-second tokens`)
  assert.equal(expiries.length, refreshed + 1, 'one token for the upgrade, one per refresh')
  for (let i = 1; i < expiries.length; i++) assert.ok(expiries[i]! > expiries[i - 1]!, 'each refresh moved the expiry')
  assert.doesNotMatch(metrics, /ws_disconnections_total\{route="\/ws",code="4003"\} [1-9]/)
})

test('client with a server-side subscription (user:<id>): its node restarts, the client resumes it with no gap and no duplicate', async (t) => {
  const secret = 'a-server-subscription-secret-long-enough'
  const sign = createSigner({ key: secret, algorithm: 'HS256' })
  const redis = await startRedis(t)
  const env = { ...RESTART_ENV, REDIS_URL: redis.url, AUTH_SECRET: secret }
  const port = await freePort()
  let nodeA = await startApp(t, env, { port })
  const nodeB = await startApp(t, env)
  const client = new RealtimeClient<ChatRoute>(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: FAST, getToken: () => sign({ sub: 'carol', exp: Math.floor(Date.now() / 1000) + 60 }) })
  t.after(() => client.close())
  const heard: string[] = []
  client.onServerEvent((event) => {
    if (event.event === 'notice') heard.push(`${event.topic} ${event.data.text}`)
  })
  const publish = async (text: string): Promise<void> => { await nodeB.app.realtime.broker.publish('user:carol', { event: 'notice', data: JSON.stringify({ text }) }) }
  await eventually(() => client.state === 'open', 5_000, 'the client to connect')
  await publish('one')
  await eventually(() => heard.length === 1, 2_000, 'the first notice')

  await nodeA.app.realtime.drain()
  await nodeA.app.close()
  await eventually(() => client.state === 'reconnecting', 2_000, 'the client to notice')
  // Published throughout the restart and the resumption: live ones arrive on the new connection
  // while its replay of the gap is still on its way.
  const sent = ['one']
  const publishing = { on: true }
  const publisher = (async () => {
    for (let n = 2; publishing.on; n++) {
      await publish(String(n))
      sent.push(String(n))
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  })()
  await new Promise((resolve) => setTimeout(resolve, 100))
  nodeA = await startApp(t, env, { port })
  await eventually(() => client.state === 'open', 5_000, 'the client to reconnect')
  await new Promise((resolve) => setTimeout(resolve, 300))
  publishing.on = false
  await publisher
  await eventually(() => heard.length >= sent.length, 5_000, `every notice (got ${heard.length} of ${sent.length})`)
  assert.deepEqual(heard, sent.map((text) => `user:carol ${text}`), 'all, in order, once')
})
