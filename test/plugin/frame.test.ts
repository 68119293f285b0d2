import assert from 'node:assert/strict'
import { test } from 'node:test'
import { EventEmitter } from 'node:events'
import * as ws from 'ws'
import { textFrame, textFrameOf } from '../../plugin/protocol/framing.js'

/** ws's frame parser, which ws exports but its type definitions leave out. */
interface FrameReceiver extends EventEmitter {
  write: (chunk: Buffer) => void
}
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => FrameReceiver }

/** What ws's own client-side parser reads from `bytes`: every text message, in order. */
function readByWs (bytes: Buffer): string[] {
  const messages: string[] = []
  const receiver = new Receiver({ isServer: false })
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, false)
    messages.push(data.toString())
  })
  receiver.on('error', (err: Error) => { throw err })
  receiver.write(bytes)
  return messages
}

test('text frames at every length where the header changes (125/126, 65,535/65,536 bytes) read back intact by ws', () => {
  const texts = [0, 1, 125, 126, 127, 65_535, 65_536, 70_000].map((bytes) => 'x'.repeat(bytes))
  // Multi-byte UTF-8: the length field counts bytes, not characters.
  texts.push('é'.repeat(63), 'é'.repeat(64), '🙂'.repeat(16_384))
  const frames = texts.flatMap((text) => [textFrameOf(text), textFrame(Buffer.from(text))])
  // All in one stream: a wrong length field would shift every frame after it.
  assert.deepEqual(readByWs(Buffer.concat(frames)), texts.flatMap((text) => [text, text]))
  assert.equal(textFrameOf('x'.repeat(125)).length, 2 + 125)
  assert.equal(textFrameOf('x'.repeat(126)).length, 4 + 126)
  assert.equal(textFrameOf('x'.repeat(65_536)).length, 10 + 65_536)
})
