import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, errors } from '../../plugin/index.js'

test('every configuration error is exported under its own code', () => {
  const entries = Object.entries(errors)
  assert.ok(entries.length >= 6)
  for (const [key, ErrorClass] of entries) {
    const error = new ErrorClass('a', 'b')
    assert.equal(error.code, key)
    assert.ok(error instanceof Error)
    assert.match(error.message, /\S/)
  }
})

test('every wire error code is its own name, in upper snake case', () => {
  for (const [key, value] of Object.entries(ErrorCode)) {
    assert.equal(key, value)
    assert.match(value, /^[A-Z]+(_[A-Z]+)*$/)
  }
})
