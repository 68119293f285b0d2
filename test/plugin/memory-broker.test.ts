import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compareOffsets, MemoryBroker } from '../../plugin/index.js'
import { brokerContract } from '../helpers/broker-contract.js'

brokerContract('MemoryBroker', {
  create: async (historySize) => new MemoryBroker({ historySize }),
  createPeers: async () => {
    const broker = new MemoryBroker()
    return [broker, broker]
  }
})

test('MemoryBroker: offsets never go back when the clock does', async (t) => {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  const realNow = Date.now
  t.after(() => { Date.now = realNow })
  Date.now = () => 2_000
  const first = await broker.publish('c', { event: 'e', data: '1' })
  Date.now = () => 1_000
  const second = await broker.publish('c', { event: 'e', data: '2' })
  assert.deepEqual([first.offset, second.offset], ['2000-0', '2000-1'])
})

test('MemoryBroker: refuses a history size that is not a non-negative integer', () => {
  assert.throws(() => new MemoryBroker({ historySize: -1 }), /historySize/)
  assert.throws(() => new MemoryBroker({ historySize: 1.5 }), /historySize/)
})

test('MemoryBroker: with no history every resume is incomplete', async (t) => {
  const broker = new MemoryBroker({ historySize: 0 })
  t.after(() => broker.close())
  const { offset } = await broker.publish('n', { event: 'e', data: '1' })
  await broker.publish('n', { event: 'e', data: '2' })
  const history = await broker.history('n', offset)
  assert.equal(history.complete, false)
  assert.deepEqual(history.entries, [])
})

test('MemoryBroker: a topic forgotten under maxTopics and published again does not claim its old history complete', async (t) => {
  const broker = new MemoryBroker({ maxTopics: 1 })
  t.after(() => broker.close())
  const first = await broker.publish('a', { event: 'e', data: '1' })
  await broker.publish('a', { event: 'e', data: '2' })
  // Publishing on b forgets a (nobody listens to it), then a comes back with a new history.
  await broker.publish('b', { event: 'e', data: '3' })
  const latestOfOldA = (await broker.publish('a', { event: 'e', data: '4' })).offset
  const resumed = await broker.history('a', first.offset)
  assert.equal(resumed.complete, false, 'the entry after `since` was forgotten')
  assert.deepEqual(resumed.entries.map((entry) => entry.data), ['4'])
  assert.equal((await broker.history('a', latestOfOldA)).complete, true)
})

test('offsets order as integer pairs, not as strings ("10-0" after "9-5")', () => {
  assert.ok(compareOffsets('10-0', '9-5') > 0)
  assert.ok(compareOffsets('9-10', '9-9') > 0)
  assert.equal(compareOffsets('5-1', '5-1'), 0)
  assert.ok(compareOffsets('0-0', '1-0') < 0)
})

test('MemoryBroker: requests that run once keep at most 100,000 keys, the oldest going first', async (t) => {
  const broker = new MemoryBroker()
  t.after(() => broker.close())
  for (let i = 0; i < 100_010; i++) {
    const claim = await broker.claimOnce(`k${i}`, 60_000)
    assert.equal(claim.state, 'claimed')
    await broker.finishOnce(`k${i}`, claim.token, `{"r":${i}}`, 60_000)
  }
  assert.equal((await broker.claimOnce('k5', 60_000)).state, 'claimed', 'among the oldest: forgotten')
  assert.deepEqual(await broker.claimOnce('k100009', 60_000), { state: 'done', answer: '{"r":100009}' })
})
