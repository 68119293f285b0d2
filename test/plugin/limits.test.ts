import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RefusalCounter, TokenBucket } from '../../plugin/messages/budget.js'

test('token bucket: a burst of its rate, then one token per 1/rate seconds', () => {
  const bucket = new TokenBucket(10, 0)
  for (let i = 0; i < 10; i++) assert.equal(bucket.take(0), 0)
  assert.equal(bucket.take(0), 100)
  assert.equal(bucket.take(50), 50)
  assert.equal(bucket.take(100), 0)
  assert.equal(bucket.take(100), 100)
  // Idle time refills no more than the burst.
  for (let i = 0; i < 10; i++) assert.equal(bucket.take(60_000), 0)
  assert.ok(bucket.take(60_000) > 0)
})

test('refusal counter: more than the threshold within one window is abuse', () => {
  const counter = new RefusalCounter(10_000, 3)
  assert.deepEqual([1, 2, 3].map((ms) => counter.record(ms + 20_000)), [false, false, false])
  assert.equal(counter.record(20_500), true)
  assert.equal(counter.record(40_000), false, 'a new window starts over')
})
