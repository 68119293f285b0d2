import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BrokerUnavailableError, compareOffsets, type Broker, type PresenceDiff, type PresenceEntry, type TopicEntry } from '../../plugin/index.js'

export interface BrokerContractOptions {
  /** A fresh broker keeping `historySize` entries per topic. */
  create: (historySize: number) => Promise<Broker>
  /** How long to wait for a delivery that crosses a network. */
  deliveryTimeoutMs?: number
  /** Two nodes' brokers over one backend (the memory broker: one broker, as it serves one node). */
  createPeers: () => Promise<[Broker, Broker]>
}

const entry = (connection: string, user: string, name: string): PresenceEntry => ({ connection, user, info: JSON.stringify({ name }) })

/**
 * The behaviour every broker must have, run against each implementation so that routing code
 * can rely on it whatever the backend.
 */
export function brokerContract (name: string, options: BrokerContractOptions): void {
  const timeout = options.deliveryTimeoutMs ?? 1_000

  async function open (t: { after: (fn: () => Promise<void>) => void }, historySize = 100): Promise<Broker> {
    const broker = await options.create(historySize)
    t.after(() => broker.close())
    return broker
  }

  async function collect (broker: Broker, topic: string): Promise<{ entries: TopicEntry[], waitFor: (n: number) => Promise<void> }> {
    const entries: TopicEntry[] = []
    await broker.subscribe(topic, (entry) => entries.push(entry))
    return {
      entries,
      async waitFor (n) {
        const deadline = Date.now() + timeout
        while (entries.length < n) {
          if (Date.now() > deadline) throw new Error(`expected ${n} entries, got ${entries.length}`)
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
      }
    }
  }

  test(`${name}: a topic that saw nothing stands at 0-0 with an epoch`, async (t) => {
    const broker = await open(t)
    const position = await broker.position('empty')
    assert.equal(position.offset, '0-0')
    assert.ok(position.epoch.length > 0)
    const history = await broker.history('empty', '0-0')
    assert.deepEqual(history.entries, [])
    assert.equal(history.complete, true)
  })

  test(`${name}: publish returns strictly increasing offsets and delivers each entry in order`, async (t) => {
    const broker = await open(t)
    const listener = await collect(broker, 'room:a')
    const positions = []
    for (let i = 0; i < 20; i++) positions.push(await broker.publish('room:a', { event: 'message', data: `{"i":${i}}` }))
    for (let i = 1; i < positions.length; i++) {
      assert.ok(compareOffsets(positions[i]!.offset, positions[i - 1]!.offset) > 0, 'offsets increase')
      assert.equal(positions[i]!.epoch, positions[0]!.epoch)
    }
    await listener.waitFor(20)
    assert.deepEqual(listener.entries.map((entry) => entry.data), positions.map((_, i) => `{"i":${i}}`))
    assert.deepEqual(listener.entries.map((entry) => entry.offset), positions.map((position) => position.offset))
    assert.ok(listener.entries.every((entry) => entry.topic === 'room:a' && entry.event === 'message'))
    assert.equal((await broker.position('room:a')).offset, positions.at(-1)!.offset)
  })

  test(`${name}: topics are independent and unsubscribe stops delivery`, async (t) => {
    const broker = await open(t)
    const a = await collect(broker, 'a')
    const b = await collect(broker, 'b')
    await broker.publish('a', { event: 'e', data: '1' })
    await broker.publish('b', { event: 'e', data: '2' })
    await a.waitFor(1)
    await b.waitFor(1)
    assert.deepEqual([a.entries[0]!.data, b.entries[0]!.data], ['1', '2'])
    const stopped: TopicEntry[] = []
    const listener = (entry: TopicEntry): void => { stopped.push(entry) }
    await broker.subscribe('a', listener)
    await broker.unsubscribe('a', listener)
    await broker.publish('a', { event: 'e', data: '3' })
    await a.waitFor(2)
    assert.deepEqual(stopped, [])
  })

  test(`${name}: history returns what followed an offset, complete while nothing was trimmed`, async (t) => {
    const broker = await open(t, 5)
    const offsets: string[] = []
    for (let i = 0; i < 3; i++) offsets.push((await broker.publish('h', { event: 'e', data: String(i), traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', publishedAt: 1_700_000_000_000 + i })).offset)
    const history = await broker.history('h', offsets[0]!)
    assert.deepEqual(history.entries.map((entry) => entry.data), ['1', '2'])
    assert.equal(history.entries[0]!.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
    assert.equal(history.entries[0]!.publishedAt, 1_700_000_000_001)
    assert.equal(history.complete, true)
    assert.equal(history.position.offset, offsets[2])
    assert.equal((await broker.history('h', offsets[2]!)).entries.length, 0)
    assert.equal((await broker.history('h', '0-0')).complete, true)
  })

  test(`${name}: history says incomplete once entries after the offset were trimmed`, async (t) => {
    // Enough entries that a broker trimming approximately (Redis trims whole blocks) trims too.
    const broker = await open(t, 3)
    const offsets: string[] = []
    for (let i = 0; i < 250; i++) offsets.push((await broker.publish('t', { event: 'e', data: String(i) })).offset)
    const old = await broker.history('t', offsets[0]!)
    assert.equal(old.complete, false)
    assert.ok(old.entries.length >= 3 && old.entries.length < 250, 'what is still held is returned')
    assert.deepEqual(old.entries.at(-1)!.data, '249')
    const recent = await broker.history('t', offsets[248]!)
    assert.equal(recent.complete, true)
    assert.deepEqual(recent.entries.map((entry) => entry.data), ['249'])
  })

  test(`${name}: an offset beyond the history is not recoverable`, async (t) => {
    const broker = await open(t)
    await broker.publish('f', { event: 'e', data: '1' })
    const history = await broker.history('f', '99999999999999-0')
    assert.equal(history.complete, false)
    assert.deepEqual(history.entries, [])
  })

  test(`${name}: a new broker over lost history has a different epoch`, async (t) => {
    const first = await open(t)
    const second = await open(t)
    await first.publish('x', { event: 'e', data: '1' })
    const [a, b] = [await first.position('x'), await second.position('x')]
    assert.notEqual(a.epoch, b.epoch)
  })

  /** Every diff a listener hears on `topic`, with a wait for the next. */
  async function hear (broker: Broker, topic: string): Promise<{ diffs: PresenceDiff[], waitFor: (n: number) => Promise<void>, stop: () => Promise<void> }> {
    const diffs: PresenceDiff[] = []
    const listener = (diff: PresenceDiff | undefined): void => { if (diff !== undefined) diffs.push(diff) }
    await broker.watchPresence(topic, listener)
    return {
      diffs,
      async waitFor (n) {
        const deadline = Date.now() + timeout
        while (diffs.length < n) {
          if (Date.now() > deadline) throw new Error(`expected ${n} presence diffs, got ${JSON.stringify(diffs)}`)
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
      },
      stop: async () => await broker.unwatchPresence(topic, listener)
    }
  }

  const byConnection = (entries: PresenceEntry[]): PresenceEntry[] => [...entries].sort((a, b) => a.connection.localeCompare(b.connection))

  test(`${name}: presence: a node's joins and leaves reach every node's listeners and reads, each change once`, async (t) => {
    const [here, there] = await options.createPeers()
    t.after(async () => { await Promise.all([here.close(), there.close()]) })
    const heard = await hear(here, 'room:p')
    const [ann, bob, bobToo] = [entry('c-ann', 'ann', 'Ann'), entry('c-bob', 'bob', 'Bob'), entry('c-bob2', 'bob', 'Bob')]
    await there.updatePresence('room:p', { joins: [ann, bob], leaves: [] })
    await heard.waitFor(1)
    assert.deepEqual(byConnection(heard.diffs[0]!.joins), [ann, bob])
    assert.deepEqual(heard.diffs[0]!.leaves, [])
    // Announcing what is already there is no change; nor is a leave of what is not.
    await there.updatePresence('room:p', { joins: [ann], leaves: [entry('c-nobody', 'nobody', '')] })
    await here.updatePresence('room:p', { joins: [bobToo], leaves: [] })
    await there.updatePresence('room:p', { joins: [], leaves: [ann] })
    await heard.waitFor(3)
    assert.deepEqual(heard.diffs.slice(1), [{ joins: [bobToo], leaves: [] }, { joins: [], leaves: [ann] }])
    for (const broker of [here, there]) assert.deepEqual(byConnection(await broker.presence('room:p')), [bob, bobToo])
    assert.deepEqual(await here.presence('room:other'), [], 'topics are independent')

    await heard.stop()
    await there.updatePresence('room:p', { joins: [], leaves: [bob] })
    await eventually(async () => (await here.presence('room:p')).length === 1, timeout)
    assert.equal(heard.diffs.length, 3, 'nothing after unwatching')
  })

  test(`${name}: a broadcast reaches every node's fleet listeners, its own included, says how many nodes, and stops at unwatch`, async (t) => {
    const [here, there] = await options.createPeers()
    t.after(async () => { await Promise.all([here.close(), there.close()]) })
    const heard: Record<'here' | 'there', string[]> = { here: [], there: [] }
    const listeners = { here: (message: string): void => { heard.here.push(message) }, there: (message: string): void => { heard.there.push(message) } }
    await here.watchFleet(listeners.here)
    await there.watchFleet(listeners.there)
    assert.equal(await here.broadcast('{"a":1}'), 2)
    await eventually(async () => heard.here.length === 1 && heard.there.length === 1, timeout)
    assert.deepEqual(heard, { here: ['{"a":1}'], there: ['{"a":1}'] })
    await there.unwatchFleet(listeners.there)
    assert.equal(await there.broadcast('{"a":2}'), 1)
    await eventually(async () => heard.here.length === 2, timeout)
    assert.deepEqual(heard.there, ['{"a":1}'])
  })

  test(`${name}: a key is claimed once across nodes: the others see it running, then its answer; a released or lapsed claim runs again`, async (t) => {
    const [here, there] = await options.createPeers()
    t.after(async () => { await Promise.all([here.close(), there.close()]) })
    const claim = await here.claimOnce('k1', 5_000)
    assert.equal(claim.state, 'claimed')
    assert.deepEqual(await there.claimOnce('k1', 5_000), { state: 'running' })
    assert.equal(await here.renewOnce('k1', (claim as { token: string }).token, 5_000), true)
    await here.finishOnce('k1', (claim as { token: string }).token, '{"r":{"n":1}}', 60_000)
    assert.deepEqual(await there.claimOnce('k1', 5_000), { state: 'done', answer: '{"r":{"n":1}}' })

    const given = await here.claimOnce('k2', 5_000) as { token: string }
    await here.releaseOnce('k2', given.token)
    assert.equal((await there.claimOnce('k2', 5_000)).state, 'claimed', 'released: the next claim runs it')

    const lapsed = await here.claimOnce('k3', 100) as { token: string }
    await new Promise((resolve) => setTimeout(resolve, 200))
    const taken = await there.claimOnce('k3', 5_000)
    assert.equal(taken.state, 'claimed', 'a claim whose holder stopped renewing is taken over')
    assert.equal(await here.renewOnce('k3', lapsed.token, 5_000), false)
    await here.finishOnce('k3', lapsed.token, '{"r":"late"}', 60_000)
    assert.deepEqual(await here.claimOnce('k3', 5_000), { state: 'running' }, 'a late finish of a lost claim changes nothing')
  })

  test(`${name}: after close, calls fail with BrokerUnavailableError`, async () => {
    const broker = await options.create(10)
    assert.equal(broker.healthy, true)
    await broker.close()
    assert.equal(broker.healthy, false)
    await assert.rejects(broker.publish('x', { event: 'e', data: '1' }), BrokerUnavailableError)
    await assert.rejects(broker.position('x'), BrokerUnavailableError)
    await assert.rejects(broker.updatePresence('x', { joins: [entry('c', 'u', 'U')], leaves: [] }), BrokerUnavailableError)
    await assert.rejects(broker.presence('x'), BrokerUnavailableError)
  })
}

async function eventually (predicate: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
