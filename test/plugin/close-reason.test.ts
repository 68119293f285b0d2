import assert from 'node:assert/strict'
import { test } from 'node:test'
import { truncateUtf8 } from '../../plugin/connection/connection.js'
import { TestClient } from '../helpers/client.js'
import { startServer } from '../helpers/server.js'

test('close reasons are cut to 123 bytes on a character boundary', () => {
  assert.equal(truncateUtf8('short', 123), 'short')
  const emoji = 'a'.repeat(120) + '😀😀'
  const cut = truncateUtf8(emoji, 123)
  assert.equal(cut, 'a'.repeat(120), 'a four-byte character that does not fit is dropped whole')
  assert.ok(!cut.includes('\uFFFD'))
  const accents = 'é'.repeat(100)
  assert.equal(Buffer.byteLength(truncateUtf8(accents, 123)), 122)
})

test('a handler closing with a long reason sends a valid close frame', async (t) => {
  const server = await startServer(t, (app) => {
    app.wsRoute('/ws').message('leave', {}, (_data, { connection }) => {
      connection.close(4500, 'ünïcödé reason '.repeat(20))
    })
  })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  client.send({ type: 'leave' })
  const closed = await client.closed
  assert.equal(closed.code, 4500)
  assert.ok(Buffer.byteLength(closed.reason) <= 123)
  assert.ok(closed.reason.startsWith('ünïcödé reason'))
})
