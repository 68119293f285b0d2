import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compareOffsets, MemoryBroker } from '../plugin/index.js'
import { brokerContract } from './helpers/broker-contract.js'

brokerContract('MemoryBroker', { create: async (historySize) => new MemoryBroker({ historySize }) })

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

test('offsets order as integer pairs, not as strings ("10-0" after "9-5")', () => {
  assert.ok(compareOffsets('10-0', '9-5') > 0)
  assert.ok(compareOffsets('9-10', '9-9') > 0)
  assert.equal(compareOffsets('5-1', '5-1'), 0)
  assert.ok(compareOffsets('0-0', '1-0') < 0)
})
