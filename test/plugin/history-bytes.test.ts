import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { DEFAULTS, MemoryBroker, type Broker, type RealtimeOptions, type TopicEntry } from '../../plugin/index.js'
import { ENTRY_OVERHEAD_BYTES } from '../../plugin/broker/memory.js'
import { TestClient, type Frame } from '../helpers/client.js'
import type { FloodReport } from '../helpers/history-flood.js'
import { metricValue } from '../helpers/metrics.js'
import { startServer } from '../helpers/server.js'

const MiB = 1_048_576

/** The broker's estimate of an entry whose strings are all Latin-1. */
function estimate (entry: Pick<TopicEntry, 'data' | 'event' | 'offset' | 'traceparent'>): number {
  return ENTRY_OVERHEAD_BYTES + entry.data.length + entry.event.length + entry.offset.length + (entry.traceparent?.length ?? 0)
}

const Note = Type.Object({ n: Type.Integer(), text: Type.String() })

function declareRoute (app: FastifyInstance) {
  return app.wsRoute('/ws', {
    events: { note: Note },
    authorizeSubscribe: (topic) => topic.startsWith('room:')
  }).message('say', { data: Type.Object({ topic: Type.String(), n: Type.Integer(), text: Type.String() }), reply: Type.Object({ offset: Type.String() }) }, async (data, { publish }) => {
    const { offset } = await publish(data.topic, 'note', { n: data.n, text: data.text })
    return { offset }
  })
}

async function setup (t: TestContext, broker: MemoryBroker, options: RealtimeOptions = {}) {
  t.after(() => broker.close())
  let route!: ReturnType<typeof declareRoute>
  const server = await startServer(t, (app) => { route = declareRoute(app) }, { broker, messagesPerSecond: 0, ...options })
  const connect = async (): Promise<TestClient> => await TestClient.connect(t, `${server.wsUrl}/ws`)
  return { server, route, connect }
}

const notes = (frames: Frame[]): number[] => frames.filter((frame) => frame.type === 'note').map((frame) => frame.data.n as number)

async function heldOffsets (broker: Broker, topic: string): Promise<string[]> {
  return (await broker.history(topic, '0-0')).entries.map((entry) => entry.offset)
}

test('a flood of 100,000 publishes of 2,000 characters stays within the default byte bound, in RSS and heap', async (t) => {
  // A small young generation: Node 24 grows it to 128 MiB on a large machine, which RSS would
  // show as growth although nothing in it is held.
  const child = spawn(process.execPath, ['--expose-gc', '--max-semi-space-size=16', '--import', 'tsx', new URL('../helpers/history-flood.ts', import.meta.url).pathname], {
    env: { ...process.env, FLOOD_PUBLISHES: '100000', FLOOD_TEXT_LENGTH: '2000', FLOOD_TOPICS: '100' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  assert.equal(code, 0, output)
  const report = JSON.parse(output) as FloodReport
  const bound = DEFAULTS.maxHistoryBytes
  const held = report.heldAfter - report.heldBefore
  const heap = report.heapAfter - report.heapBefore
  const rss = report.rssAfter - report.rssBefore
  t.diagnostic(`held +${(held / MiB).toFixed(1)} MiB, heap +${(heap / MiB).toFixed(1)} MiB, RSS +${(rss / MiB).toFixed(1)} MiB, ${report.entriesAfter} entries`)
  assert.ok(report.maxGauge <= bound, `the gauge read ${report.maxGauge}, above ${bound}`)
  assert.ok(report.heldAfter >= bound * 0.95, 'the flood fills the history up to its bound')
  // Every topic's 1,000 entries would hold all 100,000: about 260 MiB of heap and 280 of RSS,
  // half of it in the second half. Bounded, the second half adds nothing: the history was full.
  // How far RSS runs above a steady heap depends on the runtime: about 1 MiB in the second half
  // on Node 20, about 70 on Node 24 (freed memory it keeps), so the bound sits between that and
  // the 140 MiB an unbounded history adds; the heap, checked below, is the exact measure.
  const secondHalf = report.rssAfter - report.rssMiddle
  t.diagnostic(`RSS in the second half: ${(secondHalf / MiB).toFixed(1)} MiB`)
  assert.ok(secondHalf <= 100 * MiB, `RSS grew by ${(secondHalf / MiB).toFixed(1)} MiB while the history was full`)
  assert.ok(rss <= bound * 4, `RSS grew by ${(rss / MiB).toFixed(1)} MiB`)
  // The estimate is what the heap really holds, within a tenth: the entries are not heavier than counted.
  assert.ok(heap <= held * 1.1 && heap >= held * 0.8, `heap grew by ${(heap / MiB).toFixed(1)} MiB for ${(held / MiB).toFixed(1)} MiB estimated`)
})

test('over a real socket, a flood across topics keeps the history-bytes gauge within the bound; a bystander on another topic receives every entry', async (t) => {
  const maxHistoryBytes = 64 * 1024
  const broker = new MemoryBroker({ maxHistoryBytes, maxTopicHistoryBytes: 16 * 1024 })
  const { server, connect } = await setup(t, broker)
  const registry = server.app.realtime.metricsRegistry
  const bystander = await connect()
  assert.equal((await bystander.request('$subscribe', { topic: 'room:quiet' })).type, '$reply')
  const publishers = [await connect(), await connect()]
  const text = 'x'.repeat(2_000)
  let maxGauge = 0
  const quiet: number[] = []
  for (let n = 0; n < 400; n++) {
    const topic = n % 10 === 0 ? 'room:quiet' : `room:${n % 7}`
    if (topic === 'room:quiet') quiet.push(n)
    const reply = await (publishers[n % 2] as TestClient).request('say', { topic, n, text })
    assert.equal(reply.type, '$reply')
    assert.ok(broker.historyBytes <= maxHistoryBytes, `held ${broker.historyBytes} after publish ${n}`)
    if (n % 20 === 0) maxGauge = Math.max(maxGauge, await metricValue(registry, 'ws_broker_history_bytes', { broker: 'memory' }))
  }
  const gauge = await metricValue(registry, 'ws_broker_history_bytes', { broker: 'memory' })
  assert.equal(gauge, broker.historyBytes, 'the gauge reads what the broker holds')
  assert.ok(gauge > maxHistoryBytes / 2 && Math.max(gauge, maxGauge) <= maxHistoryBytes, `gauge ${gauge}, highest ${maxGauge}`)
  assert.equal(await metricValue(registry, 'ws_broker_history_entries', { broker: 'memory' }), broker.historyEntries)
  assert.ok(broker.historyEntries > 0)

  await bystander.next((frame) => frame.type === 'note' && frame.data.n === quiet.at(-1), 5_000)
  assert.deepEqual(notes(bystander.drain()).concat(quiet.at(-1) as number), quiet, 'every entry of its topic, in order')
})

test('the per-topic byte bound drops the topic\'s oldest entries first and leaves other topics alone', async (t) => {
  const broker = new MemoryBroker({ maxTopicHistoryBytes: 5_000 })
  t.after(() => broker.close())
  const other = await broker.publish('other', { event: 'e', data: 'o'.repeat(1_000) })
  const offsets: string[] = []
  for (let i = 0; i < 10; i++) offsets.push((await broker.publish('big', { event: 'e', data: String(i).repeat(1_000) })).offset)
  // Each entry is estimated at about 1,200 bytes: four fit in 5,000, five do not.
  const held = await broker.history('big', '0-0')
  assert.deepEqual(held.entries.map((entry) => entry.offset), offsets.slice(-4), 'the newest four, in order')
  assert.deepEqual(held.entries.map((entry) => entry.data[0]), ['6', '7', '8', '9'])
  assert.equal(held.complete, false)
  assert.equal((await broker.history('big', offsets[5] as string)).complete, true, 'from the last dropped entry on, nothing is missing')
  assert.equal((await broker.history('big', offsets[4] as string)).complete, false)
  assert.deepEqual(await heldOffsets(broker, 'other'), [other.offset], 'the other topic keeps its entry')
  const bytes = held.entries.reduce((sum, entry) => sum + estimate(entry), 0) + estimate({ event: 'e', data: 'o'.repeat(1_000), offset: other.offset })
  assert.equal(broker.historyBytes, bytes)
  assert.equal(broker.historyEntries, 5)
})

test('the broker-wide byte bound drops the broker\'s oldest entry, whatever its topic', async (t) => {
  const broker = new MemoryBroker({ maxHistoryBytes: 6_000 })
  t.after(() => broker.close())
  const data = 'd'.repeat(1_000)
  const a: string[] = []
  for (let i = 0; i < 3; i++) a.push((await broker.publish('a', { event: 'e', data })).offset)
  const b: string[] = []
  for (let i = 0; i < 3; i++) b.push((await broker.publish('b', { event: 'e', data })).offset)
  // Six entries of about 1,200 bytes do not fit in 6,000: the oldest of all, a's first, goes.
  assert.deepEqual(await heldOffsets(broker, 'a'), a.slice(1))
  assert.deepEqual(await heldOffsets(broker, 'b'), b)
  for (let i = 0; i < 2; i++) b.push((await broker.publish('b', { event: 'e', data })).offset)
  assert.deepEqual(await heldOffsets(broker, 'a'), [], 'a\'s entries were the oldest')
  assert.deepEqual(await heldOffsets(broker, 'b'), b)
  const history = await broker.history('a', a[0] as string)
  assert.equal(history.complete, false)
  assert.equal(history.position.offset, a[2], 'the topic still knows its latest offset')
  assert.equal((await broker.history('a', a[2] as string)).complete, true)
  assert.ok(broker.historyBytes <= 6_000 && broker.historyEntries === 5)
})

test('every bound together (entries, topic bytes, broker bytes, topics) holds exactly what a reference model holds, over 20,000 publishes', async (t) => {
  const options = { historySize: 40, maxTopicHistoryBytes: 20_000, maxHistoryBytes: 50_000, maxTopics: 8 }
  const broker = new MemoryBroker(options)
  t.after(() => broker.close())
  interface Held { topic: string, offset: string, bytes: number }
  let model: Held[] = []
  const trimmed = new Map<string, string>()
  const recency = new Map<string, true>()
  const drop = (index: number): void => {
    const [gone] = model.splice(index, 1)
    trimmed.set(gone!.topic, gone!.offset)
  }
  let seed = 42
  const random = (below: number): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
    return seed % below
  }
  const topics = Array.from({ length: 12 }, (_, i) => `t${i}`)
  for (let n = 0; n < 20_000; n++) {
    // One hot topic meets its byte bound, one its entry bound; the rest share the broker's.
    const pick = random(10)
    const topic = pick < 3 ? 't4' : pick < 5 ? 't0' : topics[random(topics.length)] as string
    // The first topics publish small entries, which meet `historySize` before their byte bound.
    const data = 'z'.repeat(topic < 't4' ? random(50) : random(3_000))
    const traceparent = random(2) === 0 ? undefined : `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`
    const { offset } = await broker.publish(topic, { event: 'note', data, traceparent })

    recency.delete(topic)
    recency.set(topic, true)
    if (recency.size > options.maxTopics) {
      const [forgotten] = recency.keys()
      recency.delete(forgotten!)
      trimmed.delete(forgotten!)
      model = model.filter((entry) => entry.topic !== forgotten)
    }
    model.push({ topic, offset, bytes: estimate({ event: 'note', data, offset, traceparent }) })
    const own = (): Held[] => model.filter((entry) => entry.topic === topic)
    while (own().length > options.historySize || own().reduce((sum, entry) => sum + entry.bytes, 0) > options.maxTopicHistoryBytes) {
      drop(model.findIndex((entry) => entry.topic === topic))
    }
    while (model.reduce((sum, entry) => sum + entry.bytes, 0) > options.maxHistoryBytes) drop(0)

    assert.equal(broker.historyBytes, model.reduce((sum, entry) => sum + entry.bytes, 0), `bytes after publish ${n}`)
    assert.equal(broker.historyEntries, model.length, `entries after publish ${n}`)
    if (n % 500 === 499) {
      for (const name of topics) {
        const history = await broker.history(name, '0-0')
        assert.deepEqual(history.entries.map((entry) => entry.offset), model.filter((entry) => entry.topic === name).map((entry) => entry.offset), `${name} after publish ${n}`)
        assert.equal(history.complete, !trimmed.has(name), `${name} complete after publish ${n}`)
      }
    }
  }
})

test('a resume from before what the byte bound dropped gets recovered: false and the held entries in order; one from within gets recovered: true', async (t) => {
  const text = 'r'.repeat(1_000)
  const probe = new MemoryBroker()
  const one = estimate({ event: 'note', data: JSON.stringify({ n: 10, text }), offset: (await probe.publish('p', { event: 'e', data: '' })).offset })
  await probe.close()
  // Room for ten entries and a half: the flood on another topic pushes out the two oldest.
  const broker = new MemoryBroker({ maxHistoryBytes: Math.floor(one * 10.5) })
  const { route, connect } = await setup(t, broker)
  const published = []
  for (let n = 1; n <= 5; n++) published.push(await route.publish('room:a', 'note', { n, text }))
  for (let n = 100; n < 107; n++) await route.publish('room:b', 'note', { n, text })
  assert.equal(broker.historyEntries, 10)

  const behind = await connect()
  const lost = await behind.request('$subscribe', { topic: 'room:a', since: published[0]!.offset, epoch: published[0]!.epoch })
  assert.equal(lost.data.recovered, false, 'entry 2 was dropped')
  await behind.next((frame) => frame.type === 'note' && frame.data.n === 5)
  assert.deepEqual(notes(behind.drain()), [3, 4], 'what is held, in order (5 was awaited)')

  const edge = await connect()
  const fromDropped = await edge.request('$subscribe', { topic: 'room:a', since: published[1]!.offset, epoch: published[1]!.epoch })
  assert.equal(fromDropped.data.recovered, true, 'a client that saw entry 2, the last dropped, misses nothing')

  const within = await connect()
  const kept = await within.request('$subscribe', { topic: 'room:a', since: published[2]!.offset, epoch: published[2]!.epoch })
  assert.equal(kept.data.recovered, true)
  await within.next((frame) => frame.type === 'note' && frame.data.n === 5)
  assert.deepEqual(notes(within.drain()), [4])
})

test('characters beyond Latin-1 count two bytes each, as V8 then stores the whole string', async (t) => {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  const latin = await broker.publish('latin', { event: 'e', data: 'é'.repeat(1_000) })
  assert.equal(broker.historyBytes, estimate({ event: 'e', data: 'é'.repeat(1_000), offset: latin.offset }))
  const before = broker.historyBytes
  const wide = await broker.publish('wide', { event: 'e', data: `${'a'.repeat(998)}€` })
  assert.equal(broker.historyBytes - before, estimate({ event: 'e', data: 'a'.repeat(999), offset: wide.offset }) + 999)
})

test('byte bounds that are not positive integers are refused at construction, naming the option and the value', async () => {
  for (const name of ['maxHistoryBytes', 'maxTopicHistoryBytes'] as const) {
    for (const value of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '1mb' as unknown as number]) {
      assert.throws(() => new MemoryBroker({ [name]: value }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'FRT_ERR_INVALID_OPTION')
        assert.ok(err instanceof TypeError)
        assert.equal(err.message, `fastify-realtime option ${name} is invalid: expected an integer >= 1, got ${String(value)}`)
        return true
      })
    }
    await new MemoryBroker({ [name]: 1 }).close()
  }
})

/** A broker whose history lives in another process: it has no held-bytes figure to report. */
class ElsewhereBroker implements Broker {
  readonly name = 'elsewhere'
  readonly #inner = new MemoryBroker()
  get healthy (): boolean { return this.#inner.healthy }
  publish: Broker['publish'] = async (topic, message) => await this.#inner.publish(topic, message)
  subscribe: Broker['subscribe'] = async (topic, listener) => await this.#inner.subscribe(topic, listener)
  unsubscribe: Broker['unsubscribe'] = async (topic, listener) => await this.#inner.unsubscribe(topic, listener)
  position: Broker['position'] = async (topic) => await this.#inner.position(topic)
  history: Broker['history'] = async (topic, since) => await this.#inner.history(topic, since)
  updatePresence: Broker['updatePresence'] = async (topic, diff) => await this.#inner.updatePresence(topic, diff)
  presence: Broker['presence'] = async (topic) => await this.#inner.presence(topic)
  watchPresence: Broker['watchPresence'] = async (topic, listener) => await this.#inner.watchPresence(topic, listener)
  unwatchPresence: Broker['unwatchPresence'] = async (topic, listener) => await this.#inner.unwatchPresence(topic, listener)
  broadcast: Broker['broadcast'] = async (message) => await this.#inner.broadcast(message)
  claimOnce: Broker['claimOnce'] = async (key, leaseMs) => await this.#inner.claimOnce(key, leaseMs)
  renewOnce: Broker['renewOnce'] = async (key, token, leaseMs) => await this.#inner.renewOnce(key, token, leaseMs)
  finishOnce: Broker['finishOnce'] = async (key, token, answer, ttlMs) => await this.#inner.finishOnce(key, token, answer, ttlMs)
  releaseOnce: Broker['releaseOnce'] = async (key, token) => await this.#inner.releaseOnce(key, token)
  watchFleet: Broker['watchFleet'] = async (listener) => await this.#inner.watchFleet(listener)
  unwatchFleet: Broker['unwatchFleet'] = async (listener) => await this.#inner.unwatchFleet(listener)
  close: Broker['close'] = async () => await this.#inner.close()
}

test('a broker that holds no history in this process reports no history gauges', async (t) => {
  const broker = new ElsewhereBroker()
  t.after(() => broker.close())
  let route!: ReturnType<typeof declareRoute>
  const server = await startServer(t, (app) => { route = declareRoute(app) }, { broker })
  await route.publish('room:x', 'note', { n: 1, text: 'x' })
  const text = await server.app.realtime.metricsRegistry!.metrics()
  assert.match(text, /^ws_broker_up\{broker="elsewhere"\} 1$/m)
  assert.doesNotMatch(text, /^ws_broker_history_(bytes|entries)\{/m)
})
