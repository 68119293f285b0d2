import assert from 'node:assert/strict'
import type { Socket } from 'node:net'
import { test } from 'node:test'
import { Type } from 'typebox'
import { TestClient } from '../helpers/client.js'
import { clientFrame, OP_TEXT, RawPeer } from '../helpers/raw-peer.js'
import { startServer } from '../helpers/server.js'

/** Counts the system-call-level writes of each server-side socket, leaving them real. */
function countWrites (socket: Socket): { writes: number } {
  const counter = { writes: 0 }
  const stream = socket as Socket & { _write: Socket['_write'], _writev?: Socket['_writev'] }
  const write = stream._write.bind(stream)
  const writev = stream._writev?.bind(stream)
  stream._write = (...args) => { counter.writes++; write(...args) }
  if (writev !== undefined) stream._writev = (...args) => { counter.writes++; writev(...args) }
  return counter
}

test('a subscriber gets the publishes of one turn in one write, in order, and a lone one within its turn', async (t) => {
  const counters: Array<{ writes: number }> = []
  const sockets: Socket[] = []
  let unsentAfterTurn: number | undefined
  const server = await startServer(t, (app) => {
    app.server.on('connection', (socket: Socket) => {
      sockets.push(socket)
      counters.push(countWrites(socket))
    })
    app.wsRoute('/ws', { events: { note: Type.Object({ n: Type.Number() }) }, authorizeSubscribe: () => true })
      .message('say', { data: Type.Object({ n: Type.Number() }) }, async (data, { publish }) => {
        await publish('room', 'note', data)
        // After the code that produced a frame, before anything queued behind it: the frame has left.
        if (data.n === 99) setImmediate(() => { unsentAfterTurn = sockets[0]!.writableLength })
      })
  }, { messagesPerSecond: 0 })
  const subscriber = await TestClient.connect(t, `${server.wsUrl}/ws`)
  await subscriber.request('$subscribe', { topic: 'room' })
  const subscriberWrites = counters[0]!
  const port = Number(new URL(server.httpUrl).port)
  const publisher = await RawPeer.open({ port, sockets: new Set() })
  t.after(() => publisher.socket.destroy())
  await publisher.handshake(port)
  await publisher.nextMessage(2_000)

  const before = subscriberWrites.writes
  // Five publishes in one read: their deliveries happen in one turn of the subscriber's socket.
  publisher.write(Buffer.concat([1, 2, 3, 4, 5].map((n) => clientFrame(OP_TEXT, JSON.stringify({ type: 'say', data: { n } })))))
  const notes = []
  for (let index = 0; index < 5; index++) notes.push((await subscriber.next((frame) => frame.type === 'note')).data.n)
  assert.deepEqual(notes, [1, 2, 3, 4, 5], 'in publish order')
  assert.equal(subscriberWrites.writes - before, 1, 'five frames, one write')

  publisher.write(clientFrame(OP_TEXT, JSON.stringify({ type: 'say', data: { n: 99 } })))
  assert.equal((await subscriber.next((frame) => frame.type === 'note')).data.n, 99)
  assert.equal(unsentAfterTurn, 0, 'a lone frame is not held past its turn')
})
