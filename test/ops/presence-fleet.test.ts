import assert from 'node:assert/strict'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createSigner } from 'fast-jwt'
import { startAppProcess, type AppProcess } from '../helpers/app-process.js'
import { TestClient, type Frame } from '../helpers/client.js'
import { runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { within } from '../helpers/server.js'

const TOPIC = 'room:fleet'
const LEASE_MS = 1_500
const WINDOW_MS = 50
/** What the presence code promises for a node that died: its members gone everywhere by then. */
const DEAD_NODE_BOUND_MS = LEASE_MS * 1.25 + WINDOW_MS
/** Timer and event-loop lag on a 2-core machine shared with other work, never the lease's share. */
const SCHEDULING_MARGIN_MS = 500
const SECRET = 'presence-fleet-secret-of-32-chars!'
const sign = createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 600_000 })

/** user → that user's connection ids, sorted: what `$presence` and a watcher's diffs must both say. */
type Members = Record<string, string[]>

interface Member {
  user: string
  client: TestClient
  /** Index of the node holding the connection, as its metrics showed when it joined. */
  node: number
}

function canonical (members: Members): string {
  return JSON.stringify(Object.keys(members).sort().map((user) => [user, members[user]]))
}

/** What a failure needs to say: which user/connection pairs are there and should not be, and which are missing. */
function difference (actual: Members, expected: Members): string {
  const pairs = (members: Members): Set<string> => new Set(Object.entries(members).flatMap(([user, connections]) => connections.map((connection) => `${user}/${connection}`)))
  const [seen, wanted] = [pairs(actual), pairs(expected)]
  const extra = [...seen].filter((pair) => !wanted.has(pair)).sort()
  const missing = [...wanted].filter((pair) => !seen.has(pair)).sort()
  return `extra ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`
}

function membersOf (members: Iterable<Member>): Members {
  const result: Members = {}
  for (const { user, client } of members) (result[user] ??= []).push(connectionId(client))
  for (const connections of Object.values(result)) connections.sort()
  return result
}

function connectionId (client: TestClient): string {
  return client.welcome!.data.connectionId as string
}

/**
 * What one watcher's `$presence.diff` frames add up to, with the moment each change arrived.
 * It listens on the socket beside TestClient, so requests on the same client are unaffected.
 */
class WatchedPresence {
  /** connection → user, as the diffs so far leave it. */
  readonly #present = new Map<string, string>()
  /** How many leaves named each connection: a dead node's member must be told gone once. */
  readonly leaves = new Map<string, number>()
  /** Joins whose info was not the chat route's `{ name }`: asserted by the test, not thrown in a socket listener. */
  readonly wrongInfo: unknown[] = []
  readonly #waiters = new Set<() => void>()

  constructor (client: TestClient) {
    client.socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Frame
      if (frame.type !== '$presence.diff' || frame.topic !== TOPIC) return
      for (const { connection } of frame.data.leaves as Array<{ connection: string }>) {
        this.leaves.set(connection, (this.leaves.get(connection) ?? 0) + 1)
        this.#present.delete(connection)
      }
      for (const { user, connection, info } of frame.data.joins as Array<{ user: string, connection: string, info: unknown }>) {
        if (JSON.stringify(info) !== JSON.stringify({ name: user })) this.wrongInfo.push(info)
        this.#present.set(connection, user)
      }
      for (const waiter of this.#waiters) waiter()
    })
  }

  get members (): Members {
    const members: Members = {}
    for (const [connection, user] of this.#present) (members[user] ??= []).push(connection)
    for (const connections of Object.values(members)) connections.sort()
    return members
  }

  /** Resolves with `performance.now()` of the diff that made the view equal `expected`. */
  async until (expected: Members, timeoutMs: number, what: string): Promise<number> {
    if (canonical(this.members) === canonical(expected)) return performance.now()
    return await new Promise((resolve, reject) => {
      const check = (): void => {
        if (canonical(this.members) !== canonical(expected)) return
        done()
        resolve(performance.now())
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${what}: a watcher's diffs, after ${timeoutMs} ms: ${difference(this.members, expected)}`))
      }, timeoutMs)
      const done = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
      }
      this.#waiters.add(check)
    })
  }
}

/** The topic's members as one node's `$presence` lists them, asked through one of its clients. */
async function presenceSeenBy (client: TestClient): Promise<Members> {
  const reply = await client.request('$presence', { topic: TOPIC, limit: 1000 })
  assert.equal(reply.type, '$reply', JSON.stringify(reply))
  const members: Members = {}
  let connections = 0
  for (const { user, connections: held } of reply.data.members as Array<{ user: string, connections: Array<{ connection: string, info: unknown }> }>) {
    for (const { info } of held) assert.deepEqual(info, { name: user })
    members[user] = held.map(({ connection }) => connection).sort()
    connections += held.length
  }
  assert.equal(reply.data.users, Object.keys(members).length, 'the reply\'s user count matches its list')
  assert.equal(reply.data.connections, connections, 'the reply\'s connection count matches its list')
  return members
}

/** Polls `$presence` on every node until each lists exactly `expected`; fails with what each saw. */
async function everyNodeLists (clients: TestClient[], expected: Members, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let seen: Members[] = []
  do {
    seen = await Promise.all(clients.map(presenceSeenBy))
    if (seen.every((members) => canonical(members) === canonical(expected))) return
    await sleep(50)
  } while (Date.now() < deadline)
  assert.fail(`${what}: $presence, after ${timeoutMs} ms, node by node: ${seen.map((members) => difference(members, expected)).join(' | ')}`)
}

async function scrape (node: AppProcess, metric: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(2_000) })).text()
  const match = new RegExp(`^${metric}(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(text)
  if (match === null) throw new Error(`no ${metric} on ${node.url}/metrics`)
  return Number(match[1])
}

async function untilMetric (nodes: AppProcess[], metric: string, value: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let seen: number[] = []
  do {
    seen = await Promise.all(nodes.map(async (node) => await scrape(node, metric)))
    if (seen.every((seenValue) => seenValue === value)) return
    await sleep(50)
  } while (Date.now() < deadline)
  assert.fail(`${what}: ${metric} ${JSON.stringify(seen)}, expected ${value} on every node`)
}

async function connect (t: TestContext, url: string, user: string): Promise<TestClient> {
  return await within(TestClient.connect(t, `${url}/ws?token=${sign({ sub: user })}`), 5_000, `${user} connecting`)
}

async function subscribe (client: TestClient, watch: boolean): Promise<void> {
  const reply = await client.request('$subscribe', { topic: TOPIC, presence: watch })
  assert.equal(reply.type, '$reply', JSON.stringify(reply))
}

async function join (t: TestContext, url: string, user: string): Promise<TestClient> {
  const client = await connect(t, url, user)
  await subscribe(client, false)
  return client
}

test('presence across 3 app processes behind HAProxy: everyone sees everyone, a SIGKILLed node\'s members leave everywhere within lease × 1.25 + window, a Redis restart ends with the exact set', { timeout: 90_000 }, async (t) => {
  const redis = await startRedis(t)
  const env: NodeJS.ProcessEnv = {
    REDIS_URL: redis.url,
    BROKER_PRESENCE_LEASE_MS: String(LEASE_MS),
    WS_PRESENCE_WINDOW_MS: String(WINDOW_MS),
    AUTH_SECRET: SECRET,
    WS_DRAIN_MS: '50',
    // startAppProcess recognises the app by its info-level "Server listening" line.
    LOG_LEVEL: 'info'
  }
  const nodes = await Promise.all([0, 1, 2].map(async () => await startAppProcess(t, env)))
  const wsUrls = nodes.map((node) => node.url.replace(/^http/, 'ws'))
  const lbPort = await freePort()
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
    LB_BIND: `127.0.0.1:${lbPort}`,
    ...Object.fromEntries(nodes.map((node, i) => [`APP${i + 1}_ADDR`, new URL(node.url).host]))
  })
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/ready`)
  // Health checks need `rise 2` × `inter 1s` to see every node up; before that leastconn has
  // fewer servers to spread over.
  await sleep(2_500)

  // A watcher on each node, connected to it directly: every node must hold a view to check.
  const watchers: Member[] = []
  const views: WatchedPresence[] = []
  for (const [node, url] of wsUrls.entries()) {
    const client = await connect(t, url, `watcher-${node + 1}`)
    // Listening before subscribing: the first diff may overtake the `$subscribe` reply, since
    // its window starts when the node reads the topic, before the watcher's own join.
    views.push(new WatchedPresence(client))
    await subscribe(client, true)
    watchers.push({ user: `watcher-${node + 1}`, client, node })
  }

  // Members through HAProxy, one at a time, so the node whose ws_presence_members rose is the
  // one that took it: the test knows who must leave when a node dies.
  let held = await Promise.all(nodes.map(async (node) => await scrape(node, 'ws_presence_members')))
  const routed: Member[] = []
  for (let i = 1; i <= 6; i++) {
    const client = await join(t, `ws://127.0.0.1:${lbPort}`, `member-${i}`)
    const now = await Promise.all(nodes.map(async (node) => await scrape(node, 'ws_presence_members')))
    const rose = now.flatMap((count, node) => count === held[node]! + 1 ? [node] : [])
    assert.equal(rose.length, 1, `exactly one node took member-${i}: ${JSON.stringify(held)} → ${JSON.stringify(now)}`)
    routed.push({ user: `member-${i}`, client, node: rose[0]! })
    held = now
  }
  const routedPerNode = nodes.map((_, node) => routed.filter((member) => member.node === node).length)
  t.diagnostic(`HAProxy spread the members over the nodes as ${JSON.stringify(routedPerNode)}`)
  assert.ok(routedPerNode.every((count) => count >= 1), `every node holds a member HAProxy sent it: ${JSON.stringify(routedPerNode)}`)

  const DOOMED = 2
  // One user on two nodes, one of them the doomed one: reaping must take the connection, not the user.
  const twice: Member[] = []
  for (const node of [0, DOOMED]) twice.push({ user: 'twice', node, client: await join(t, wsUrls[node]!, 'twice') })

  const everyone = [...watchers, ...routed, ...twice]
  assert.deepEqual(await Promise.all(nodes.map(async (node) => await scrape(node, 'ws_presence_members'))),
    nodes.map((_, node) => everyone.filter((member) => member.node === node).length), 'each node counts the members it holds')
  const all = membersOf(everyone)
  await everyNodeLists(watchers.map(({ client }) => client), all, 3_000, 'everyone joined')
  await Promise.all(views.map(async (view) => await view.until(all, 2_000, 'everyone joined')))

  // A crash: no leave is ever sent; only the lease running out can take its members away.
  const survivors = everyone.filter((member) => member.node !== DOOMED)
  const lost = everyone.filter((member) => member.node === DOOMED)
  const remaining = membersOf(survivors)
  const survivingWatchers = watchers.filter((member) => member.node !== DOOMED)
  const survivingViews = views.filter((_, node) => node !== DOOMED)
  const exited = once(nodes[DOOMED]!.child, 'exit')
  const killedAt = performance.now()
  nodes[DOOMED]!.child.kill('SIGKILL')
  const told = await Promise.all(survivingViews.map(async (view) => await view.until(remaining, DEAD_NODE_BOUND_MS + 5_000, 'the dead node\'s members left')))
  const tookMs = told.map((at) => Math.round(at - killedAt))
  t.diagnostic(`the dead node's members left the surviving watchers' views after ${JSON.stringify(tookMs)} ms (bound ${DEAD_NODE_BOUND_MS} ms + ${SCHEDULING_MARGIN_MS} ms margin)`)
  for (const ms of tookMs) {
    assert.ok(ms <= DEAD_NODE_BOUND_MS + SCHEDULING_MARGIN_MS, `within lease × 1.25 + window: ${ms} ms`)
    // Its last renewal was at most a quarter lease before the kill: sooner would mean something
    // other than the lease took the members.
    assert.ok(ms >= LEASE_MS / 2, `not before its lease could have run out: ${ms} ms`)
  }
  // A watching node answers `$presence` from the view its diffs are made from, updated before
  // they are sent: once the diffs arrived, one read must already agree.
  for (const { client } of survivingWatchers) assert.deepEqual(await presenceSeenBy(client), remaining, 'the exact remaining set')
  await within(exited, 2_000, 'the SIGKILLed node exiting')
  await Promise.all(lost.map(async ({ user, client }) => await within(client.closed, 2_000, `${user}'s connection to the dead node closing`)))

  // Redis crashes and comes back empty: each node must write its own members again.
  await redis.stop('SIGKILL')
  const live = nodes.filter((_, node) => node !== DOOMED)
  await untilMetric(live, 'ws_broker_up', 0, 5_000, 'the nodes noticed Redis was gone')
  // A leave during the outage cannot reach Redis: the node's rewrite must leave it out.
  const leavesInOutage = routed.find((member) => member.node !== DOOMED)!
  leavesInOutage.client.socket.close()
  await within(leavesInOutage.client.closed, 2_000, 'a member leaving during the outage')
  await redis.start()
  await untilMetric(live, 'ws_broker_up', 1, 10_000, 'the nodes reconnected to Redis')
  const afterRestart = membersOf(survivors.filter((member) => member !== leavesInOutage))
  await everyNodeLists(survivingWatchers.map(({ client }) => client), afterRestart, 5_000, 'after the Redis restart')
  await Promise.all(survivingViews.map(async (view) => await view.until(afterRestart, 2_000, 'after the Redis restart')))

  // The restarted Redis takes new members as before.
  const late = await join(t, `ws://127.0.0.1:${lbPort}`, 'late')
  const final = { ...afterRestart, late: [connectionId(late)] }
  await everyNodeLists(survivingWatchers.map(({ client }) => client), final, 3_000, 'a join after the restart')
  await Promise.all(survivingViews.map(async (view) => await view.until(final, 2_000, 'a join after the restart')))

  // Reaping runs in every node's scripts, but atomically: each of the dead node's members was
  // told gone once per watcher, however many nodes noticed.
  for (const view of survivingViews) {
    assert.deepEqual(lost.map((member) => view.leaves.get(connectionId(member.client))), lost.map(() => 1))
  }
  for (const view of views) assert.deepEqual(view.wrongInfo, [], 'every join carries the member info the chat route declares')
  // Allowed, but worth seeing: a node that re-reads the topic before another has rewritten its
  // members tells its watchers they left, then joined again.
  const flapped = survivingViews.map((view) => survivors.filter((member) => member !== leavesInOutage && view.leaves.has(connectionId(member.client))).length)
  t.diagnostic(`surviving members told gone and back during the Redis restart, per surviving watcher: ${JSON.stringify(flapped)}`)
})
