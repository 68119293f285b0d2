import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { CLOSE_CODE_MEANINGS } from '../../plugin/asyncapi/codes.js'
import { closePolicy } from '../../plugin/client/index.js'
import { CloseCode } from '../../plugin/index.js'
import { CLOSE_CODES, closeCodeEntry } from '../../plugin/protocol/codes.js'
import { closeCodeLabel } from '../../plugin/telemetry/metrics.js'

// One close-code table (plugin/protocol/codes.ts): the protocol document, the client's policy,
// the AsyncAPI document and the metric labels all say what it says.

const protocol = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8')
const entries = Object.entries(CLOSE_CODES)

/** PROTOCOL.md's close-code table, one array of cells per row. */
function documentedRows (): string[][] {
  const section = protocol.slice(protocol.indexOf('## Close codes'))
  const lines = section.split('\n').slice(1)
  assert.match(lines[0] ?? '', /^\| code \| name \| sent by \| when \| client reconnects\? \|$/)
  return lines.slice(2).filter((line) => line.startsWith('|')).map((line) => line.split(' | ').map((cell) => cell.replace(/^\| |\|$/g, '').trim()))
}

test('PROTOCOL.md\'s close-code table is the code\'s table, row for row', () => {
  const expected = entries.map(([name, entry]) => [String(entry.code), `\`${name}\``, entry.sentBy, entry.meaning, entry.reconnect])
  assert.deepEqual(documentedRows(), expected)
  assert.deepEqual(Object.values(CloseCode), entries.map(([, entry]) => entry.code))
})

test('the client does what the table\'s words say, for every code and for codes it does not list', () => {
  for (const [name, entry] of entries) {
    const policy = closePolicy(entry.code)
    const words = entry.reconnect
    if (policy === 'stop') assert.match(words, /^(no|only when)/, name)
    else assert.match(words, /^yes/, name)
    if (policy === 'refresh-credentials') assert.match(words, /refresh/, name)
    if (policy === 'reconnect-later') assert.match(words, /longer/, name)
  }
  assert.equal(closePolicy(CloseCode.IDLE_TIMEOUT), 'stop')
  assert.equal(closePolicy(CloseCode.IDLE_TIMEOUT, { reconnectOnIdle: true }), 'reconnect')
  assert.equal(closePolicy(4321), 'reconnect', '4000–4499: reconnect')
  assert.equal(closePolicy(4777), 'stop', '4500–4999: do not')
  assert.equal(closePolicy(3000), 'reconnect')
})

test('the AsyncAPI document and the metric labels come from the same table', () => {
  assert.deepEqual(CLOSE_CODE_MEANINGS, Object.fromEntries(entries.map(([, { code, meaning, reconnect }]) => [code, { meaning, reconnect }])))
  for (const [, entry] of entries) assert.equal(closeCodeLabel(entry.code), String(entry.code))
  assert.equal(closeCodeLabel(4321), '4xxx', 'codes a client chooses are grouped, so they cannot mint label values')
  assert.equal(closeCodeLabel(3999), '3xxx')
  assert.equal(closeCodeLabel(1014), '1014', 'RFC 6455 codes stay themselves')
  assert.equal(closeCodeLabel(99), 'other')
  assert.equal(closeCodeEntry(1012)?.advice, 'reconnect')
  assert.equal(closeCodeEntry(4321), undefined)
})
