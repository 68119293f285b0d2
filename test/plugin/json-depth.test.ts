import assert from 'node:assert/strict'
import { test } from 'node:test'
import { exceedsNestingDepth } from '../../plugin/messages/json-depth.js'

test('nesting depth counts objects and arrays, not brackets inside strings', () => {
  assert.equal(exceedsNestingDepth('{"a":{"b":[1]}}', 3), false)
  assert.equal(exceedsNestingDepth('{"a":{"b":[[1]]}}', 3), true)
  assert.equal(exceedsNestingDepth(`{"s":"${'['.repeat(50)}"}`, 2), false)
  assert.equal(exceedsNestingDepth(`{"s":"\\"${'{'.repeat(50)}"}`, 2), false, 'an escaped quote does not end the string')
  assert.equal(exceedsNestingDepth('['.repeat(1_000_000), 32), true)
  assert.equal(exceedsNestingDepth('[]'.repeat(1_000), 1), false, 'siblings are not depth')
})
