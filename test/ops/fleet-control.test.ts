import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { createSigner } from 'fast-jwt'
import { Redis } from 'ioredis'
import { WebSocket } from 'ws'
import type { ChatRoute } from '../../app/chat-route.js'
import { RealtimeClient, type WebSocketConstructor } from '../../plugin/client/index.js'
import { compareOffsets, type Broker } from '../../plugin/index.js'
import { startApp } from '../helpers/app.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { eventually, within, type TestServer } from '../helpers/server.js'

const SECRET = 'fleet-control-secret-of-32-chars!!'
const signer = createSigner({ key: SECRET, algorithm: 'HS256' })
/** Reconnections within tens of milliseconds: the tests wait on them. */
const FAST = { minMs: 20, maxMs: 200 }

/** A JWT the example app accepts for `user`, expiring at `exp` (seconds since the epoch). */
function token (user: string, exp = Math.floor(Date.now() / 1000) + 600): string {
  return signer({ sub: user, exp })
}

/** Frames as the client's sockets received them, each with the number of its socket (0 first). */
type Recorded = Array<{ socket: number, frame: Frame }>

/**
 * `ws`'s WebSocket, recording every frame beside the client's own handler: what RealtimeClient
 * hides (`$welcome`, an `IN_PROGRESS` it retries, the order frames came in) is what some
 * assertions are about. With `resumeAfterLiveEvent`, a resuming `$subscribe` (one with `since`)
 * leaves only once a live event reached the new socket: on loopback that window is a few
 * milliseconds, over a real network a round trip, and the client must put the replay that
 * follows before the live event it already has.
 */
function recordingWebSocket (frames: Recorded, options: { resumeAfterLiveEvent?: boolean } = {}): WebSocketConstructor {
  let sockets = 0
  return class extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      const socket = sockets++
      let liveEventArrived = (): void => {}
      const liveEvent = new Promise<void>((resolve) => { liveEventArrived = resolve })
      this.addEventListener('message', (message) => {
        const frame = JSON.parse(String(message.data)) as Frame
        frames.push({ socket, frame })
        if (frame.offset !== undefined) liveEventArrived()
      })
      if (options.resumeAfterLiveEvent !== true) return
      const send = this.send.bind(this)
      this.send = ((data: string) => {
        const frame = JSON.parse(data) as Frame
        if (frame.type !== '$subscribe' || frame.data?.since === undefined) return send(data)
        // Sent anyway after a while: the test then fails on what it checks, not on a hang.
        within(liveEvent, 2_000, 'a live event before the resume').catch(() => {}).finally(() => send(data))
      }) as typeof this.send
    }
  }
}

interface Fleet {
  /** The example app's nodes, by their place in deploy/haproxy.cfg (app1 first). */
  nodes: TestServer[]
  /** `ws://127.0.0.1:<port>` of HAProxy. */
  balancer: string
  /** Drains and closes a node, then starts a new one on its address, as a rolling deploy does. */
  restart: (index: number) => Promise<void>
}

/** Three example-app nodes on one Redis, signed-in users only, behind deploy/haproxy.cfg. */
async function startFleet (t: TestContext): Promise<Fleet> {
  const redis = await startRedis(t)
  const env = { REDIS_URL: redis.url, AUTH_SECRET: SECRET }
  const nodes = await Promise.all([0, 1, 2].map(async () => await startApp(t, env)))
  const lbPort = await freePort()
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
    LB_BIND: `127.0.0.1:${lbPort}`,
    ...Object.fromEntries(nodes.map((node, i) => [`APP${i + 1}_ADDR`, new URL(node.httpUrl).host]))
  })
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/ready`)
  return {
    nodes,
    balancer: `ws://127.0.0.1:${lbPort}`,
    async restart (index) {
      const old = nodes[index]!
      await old.app.realtime.drain()
      await old.app.close()
      nodes[index] = await startApp(t, env, { port: Number(new URL(old.httpUrl).port) })
    }
  }
}

const connectionCounts = (fleet: Fleet): number[] => fleet.nodes.map((node) => node.app.realtime.connectionCount)

/** Connects `user` through HAProxy; the node whose count rose is the one HAProxy chose. */
async function connectThroughBalancer (t: TestContext, fleet: Fleet, user: string): Promise<{ client: TestClient, node: number }> {
  const before = connectionCounts(fleet)
  const client = await within(TestClient.connect(t, `${fleet.balancer}/ws?token=${token(user)}`), 5_000, `${user} connecting through HAProxy`)
  const after = connectionCounts(fleet)
  const rose = after.flatMap((count, node) => count === before[node]! + 1 ? [node] : [])
  assert.equal(rose.length, 1, `exactly one node took ${user}: ${JSON.stringify(before)} → ${JSON.stringify(after)}`)
  return { client, node: rose[0]! }
}

/**
 * Publishes `notice` events on a topic one after another from one node's broker, recording each
 * with its offset: the list is in offset order, what a subscriber must hear exactly.
 */
class SteadyPublisher {
  readonly published: Array<{ text: string, offset: string }> = []
  #stopped = false
  readonly #loop: Promise<void>

  constructor (broker: Broker, topic: string, everyMs: number) {
    this.#loop = (async () => {
      while (!this.#stopped) {
        const text = `notice ${this.published.length + 1}`
        const { offset } = await broker.publish(topic, { event: 'notice', data: JSON.stringify({ text }) })
        this.published.push({ text, offset })
        await new Promise((resolve) => setTimeout(resolve, everyMs))
      }
    })()
    // A failed publish is rethrown by stop(), not left to crash the process meanwhile.
    this.#loop.catch(() => {})
  }

  /** Resolves once `count` more events were published than when it was called. */
  async more (count: number, timeoutMs: number, what: string): Promise<void> {
    const target = this.published.length + count
    await eventually(() => this.published.length >= target, timeoutMs, what)
  }

  async stop (): Promise<Array<{ text: string, offset: string }>> {
    this.#stopped = true
    await this.#loop
    return this.published
  }
}

test('fleet control across 3 example-app nodes behind HAProxy on one Redis: user actions from a third node, a server-side subscription resumed across a node restart, a refused $refresh', { timeout: 60_000 }, async (t) => {
  const fleet = await startFleet(t)

  await t.test('sendToUser and disconnectUser called on a node holding none of the user\'s connections reach both of them on the two other nodes, and no one else', async (t) => {
    const annOne = await connectThroughBalancer(t, fleet, 'ann')
    const annTwo = await connectThroughBalancer(t, fleet, 'ann')
    const bob = await connectThroughBalancer(t, fleet, 'bob')
    assert.notEqual(annOne.node, annTwo.node, 'leastconn sent ann\'s second connection to an idle node')
    const third = [0, 1, 2].find((node) => node !== annOne.node && node !== annTwo.node)!
    assert.equal(bob.node, third, 'and bob\'s to the last idle one')
    // Beside one of ann's connections: a node that acts on ann must pick her connections only.
    const carol = await within(TestClient.connect(t, `${fleet.nodes[annOne.node]!.wsUrl}/ws?token=${token('carol')}`), 5_000, 'carol connecting')
    const acting = fleet.nodes[third]!.app.realtime
    const anns = [annOne.client, annTwo.client]
    const others = { bob: bob.client, carol }

    assert.deepEqual(await acting.sendToUser('ann', 'notice', { text: 'your export is ready' }), { nodes: 3 }, 'Redis told every node, the acting one included')
    for (const client of anns) assert.deepEqual(await client.next((frame) => frame.type === 'notice'), { type: 'notice', data: { text: 'your export is ready' } })
    // Each node hears the fleet channel in publish order: a user's own notice arriving first
    // proves that ann's, published before it, was not written to that user.
    for (const [user, client] of Object.entries(others)) {
      await acting.sendToUser(user, 'notice', { text: `for ${user}` })
      assert.deepEqual((await client.next((frame) => frame.type === 'notice')).data, { text: `for ${user}` }, `${user} never got ann's notice`)
    }

    assert.deepEqual(await acting.disconnectUser('ann', { code: 4600, reason: 'account suspended' }), { nodes: 3 })
    for (const client of anns) assert.deepEqual(await within(client.closed, 2_000, 'ann\'s connection closing'), { code: 4600, reason: 'account suspended' })
    // The same order: a notice arriving after the disconnect was applied, on a socket still open.
    for (const [user, client] of Object.entries(others)) {
      await acting.sendToUser(user, 'notice', { text: `still here, ${user}` })
      assert.deepEqual((await client.next((frame) => frame.type === 'notice')).data, { text: `still here, ${user}` })
      assert.equal(client.socket.readyState, WebSocket.OPEN, `${user} left open`)
    }
    const expected = [0, 1, 2].map((node) => node === third || node === annOne.node ? 1 : 0)
    await eventually(() => JSON.stringify(connectionCounts(fleet)) === JSON.stringify(expected), 2_000, `the nodes to hold bob and carol only, ${JSON.stringify(expected)}`)

    assert.deepEqual(await acting.disconnectUser('carol'), { nodes: 3 })
    assert.equal((await within(carol.closed, 2_000, 'carol\'s connection closing')).code, 1008, 'without a code: policy, do not reconnect')
  })

  await t.test('a signed-in RealtimeClient hears user:<id> through onServerEvent; its node is drained and restarted; every event published meanwhile arrives once, in order', async (t) => {
    await eventually(() => connectionCounts(fleet).every((count) => count === 0), 5_000, 'the earlier connections to close')
    const frames: Recorded = []
    let whileAway: (() => Promise<void>) | undefined
    let publishedWhileAway = 0
    const client = new RealtimeClient<ChatRoute>(`${fleet.balancer}/ws`, {
      WebSocket: recordingWebSocket(frames, { resumeAfterLiveEvent: true }),
      backoff: FAST,
      // Awaited before each connection attempt, when the client holds no connection: what is
      // published meanwhile can only reach it through its resume from the last offset.
      getToken: async () => {
        await whileAway?.()
        return token('dora')
      }
    })
    t.after(() => client.close())
    const heard: Array<{ text: string, offset: string }> = []
    client.onServerEvent((event) => {
      if (event.event === 'notice' && event.topic === 'user:dora') heard.push({ text: event.data.text, offset: event.offset })
    })
    await eventually(() => client.state === 'open', 5_000, 'dora connecting through HAProxy')
    const home = connectionCounts(fleet).indexOf(1)
    assert.notEqual(home, -1, `one node holds dora: ${JSON.stringify(connectionCounts(fleet))}`)
    const publisher = new SteadyPublisher(fleet.nodes[(home + 1) % 3]!.app.realtime.broker, 'user:dora', 20)
    t.after(async () => { await publisher.stop().catch(() => {}) })
    await eventually(() => heard.length >= 3, 3_000, 'dora hearing her topic live')

    const firstConnection = client.connectionId
    whileAway = async () => {
      const before = publisher.published.length
      await publisher.more(3, 5_000, 'events published while dora is away')
      publishedWhileAway += publisher.published.length - before
    }
    await fleet.restart(home)
    await eventually(() => client.state === 'open' && client.connectionId !== firstConnection, 10_000, 'dora back through HAProxy')
    whileAway = undefined
    t.diagnostic(`dora came back on node ${connectionCounts(fleet).indexOf(1) + 1} (was on node ${home + 1}); ${publishedWhileAway} events published while she had no connection`)
    await publisher.more(3, 3_000, 'events published on dora\'s new connection')
    const published = await publisher.stop()

    // Delivered in offset order: once the last has arrived, nothing before it is still coming.
    await eventually(() => heard.at(-1)?.offset === published.at(-1)!.offset, 5_000, 'the last event')
    assert.deepEqual(heard, published, 'every event once, in offset order, none missing')
    assert.ok(publishedWhileAway >= 3, `events were published while dora had no connection: ${publishedWhileAway}`)
    const welcomes = frames.filter(({ frame }) => frame.type === '$welcome').map(({ frame }) => (frame.data.subscriptions as Array<{ topic: string }>).map(({ topic }) => topic))
    assert.deepEqual(welcomes, [['user:dora'], ['user:dora']], 'each connection is subscribed by the server on open')
    const secondSocket = frames.filter(({ frame }) => frame.type === '$welcome')[1]!.socket
    const arrived = frames.filter(({ socket, frame }) => socket === secondSocket && frame.offset !== undefined).map(({ frame }) => frame.offset as string)
    assert.ok(arrived.some((offset, i) => i > 0 && compareOffsets(offset, arrived[i - 1]!) < 0), `a live event came before the replay on the new connection: ${JSON.stringify(arrived)}`)
  })

  await t.test('$refresh with another user\'s token through HAProxy answers INVALID_CREDENTIALS; the connection works on and closes with 4003 at its own expiry', async (t) => {
    // Whole seconds, as JWTs count: 1–2 s of life left, time for the refusal and a request.
    const exp = Math.floor(Date.now() / 1000) + 2
    const erin = await within(TestClient.connect(t, `${fleet.balancer}/ws?token=${token('erin', exp)}`), 5_000, 'erin connecting through HAProxy')
    assert.equal(erin.welcome!.data.expiresAt, exp * 1000)
    const refused = await erin.request('$refresh', { token: token('frank') })
    assert.equal(refused.type, '$error', JSON.stringify(refused))
    assert.equal(refused.error.code, 'INVALID_CREDENTIALS')
    assert.deepEqual((await erin.request('echo', { text: 'still erin' })).data, { text: 'still erin' })
    // Expiry is checked every second: a refresh that took frank's expiry would outlive this.
    const closed = await within(erin.closed, exp * 1000 - Date.now() + 2_500, 'erin\'s connection closing at her token\'s expiry')
    const closedAt = Date.now()
    assert.deepEqual(closed, { code: 4003, reason: 'credentials expired' })
    assert.ok(closedAt >= exp * 1000, `not before the old expiry: ${closedAt - exp * 1000} ms`)
  })
})

/** test/fixtures/counter-server.ts for signed-in users, as a process of its own, on a port of its own. */
interface CounterProcess {
  child: ChildProcess
  /** host:port, as deploy/haproxy.cfg names a server. */
  address: string
  /** How many times its handler started. */
  readonly handlerRuns: number
}

/**
 * The dead run's claim outlives the kill by two thirds of the lease at least (it is renewed every
 * third): 1.3 s for the client to come back through HAProxy and be told IN_PROGRESS, however
 * slow a shared machine is. The handler's wait is what the kill interrupts.
 */
const COUNTER_DELAY_MS = 2_000
const LEASE_MS = 2_000

async function startCounterProcess (t: TestContext, redisUrl: string): Promise<CounterProcess> {
  const port = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/counter-server.ts'], {
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port), SIGNED_IN: '1', COUNTER_DELAY_MS: String(COUNTER_DELAY_MS), IDEMPOTENCY_LEASE_MS: String(LEASE_MS) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the counter process did not start: ${output}`)), 20_000)
    child.stdout!.on('data', () => {
      if (!output.includes(`port ${port}`)) return
      clearTimeout(timer)
      resolve()
    })
    child.once('error', (err) => reject(new Error(`the counter process could not run: ${err.message}`)))
    child.once('exit', (code) => reject(new Error(`the counter process exited with ${String(code)}: ${output}`)))
  })
  return {
    child,
    address: `127.0.0.1:${port}`,
    get handlerRuns () { return output.split('\n').filter((line) => line === 'increment started').length }
  }
}

test('an idempotent request through HAProxy whose process is SIGKILLed mid-handler: the client sends it again through HAProxy, the other process says IN_PROGRESS until the dead run\'s claim lapses, then runs it once', { timeout: 60_000 }, async (t) => {
  const redis = await startRedis(t)
  const counter = new Redis(redis.url)
  t.after(() => counter.disconnect())
  const processes = await Promise.all([0, 1].map(async () => await startCounterProcess(t, redis.url)))
  const lbPort = await freePort()
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
    LB_BIND: `127.0.0.1:${lbPort}`,
    APP1_ADDR: processes[0]!.address,
    APP2_ADDR: processes[1]!.address,
    // The configuration names three servers; two processes are enough to have one survive.
    APP3_ADDR: processes[1]!.address
  })
  const balancer = `ws://127.0.0.1:${lbPort}/ws`
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/ready`)
  const frames: Recorded = []
  const client = new RealtimeClient(balancer, { WebSocket: recordingWebSocket(frames), backoff: FAST, getToken: () => 'ann' })
  t.after(() => client.close())
  await eventually(() => client.state === 'open', 5_000, 'the client connecting through HAProxy')
  const firstSocket = frames.find(({ frame }) => frame.type === '$welcome')!.socket

  const answer = client.request('increment', undefined, { idempotent: 'order-1', timeoutMs: 20_000 })
  // Awaited below; a failure before then must be reported as itself, not as this rejecting later.
  answer.catch(() => {})
  await eventually(() => processes.some((candidate) => candidate.handlerRuns === 1), 5_000, 'the handler starting where HAProxy sent the client')
  const doomed = processes.find((candidate) => candidate.handlerRuns === 1)!
  const survivor = processes.find((candidate) => candidate !== doomed)!
  const exited = once(doomed.child, 'exit')
  const killedAt = Date.now()
  doomed.child.kill('SIGKILL')
  await within(exited, 2_000, 'the SIGKILLed process exiting')
  assert.equal(await counter.get('counter:runs'), null, 'the dead run never counted')

  assert.deepEqual(await within(answer, 15_000, 'the answer after the kill'), { count: 1 })
  t.diagnostic(`answered ${Date.now() - killedAt} ms after the kill (lease ${LEASE_MS} ms, handler ${COUNTER_DELAY_MS} ms)`)
  assert.equal(await counter.get('counter:runs'), '1')
  assert.equal(survivor.handlerRuns, 1, 'the survivor ran it once')
  // What the survivor answered the resent request: its claim in Redis was seen (IN_PROGRESS,
  // retried by the client), and only once it lapsed did the survivor run it.
  const answersAfterTheDrop = frames
    .filter(({ socket, frame }) => socket > firstSocket && (frame.type === '$reply' || frame.type === '$error'))
    .map(({ frame }) => frame.type === '$reply' ? 'reply' : String(frame.error?.code))
  assert.ok(answersAfterTheDrop.length >= 2 && answersAfterTheDrop.slice(0, -1).every((code) => code === 'IN_PROGRESS') && answersAfterTheDrop.at(-1) === 'reply',
    `IN_PROGRESS until the lease lapsed, then the reply: ${JSON.stringify(answersAfterTheDrop)}`)

  // Asked again on this connection, and from another device of the same user: the stored answer.
  assert.deepEqual(await client.request('increment', undefined, { idempotent: 'order-1', timeoutMs: 5_000 }), { count: 1 })
  const otherDevice = new RealtimeClient(balancer, { WebSocket, backoff: FAST, getToken: () => 'ann' })
  t.after(() => otherDevice.close())
  assert.deepEqual(await otherDevice.request('increment', undefined, { idempotent: 'order-1', timeoutMs: 5_000 }), { count: 1 })
  assert.equal(await counter.get('counter:runs'), '1')
  assert.equal(survivor.handlerRuns, 1, 'replayed, not run again')
})
