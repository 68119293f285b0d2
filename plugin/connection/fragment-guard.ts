import type { WebSocket } from 'ws'

/*
 * ws keeps each fragment of an unfinished message as a view into the socket chunk it arrived in
 * (`Receiver#getData` pushes a `consume()` subarray onto `_fragments`). A peer that sends 1-byte
 * continuation frames, each in a read padded with a few hundred unsolicited pongs, pins a whole
 * read per byte of message: about 230 MB of RSS per 4,000 fragments, held until the connection
 * closes. ws 8.23 offers no hook for this, so after each read the fragments that arrived in it
 * are copied into one buffer of their own size: an unfinished message then holds what it carries
 * (at most `maxPayload`, in at most `maxFragments` fragments, both enforced by ws). The receiver's
 * fields are read by shape; if a later ws renames them the guard finds no receiver and does
 * nothing, which `test/fragments.test.ts` catches.
 */

/** The part of ws's `Receiver` the guard reads and rewrites. */
export interface FragmentReceiver {
  /** Payload buffers of the message being assembled; replaced by a new array when it completes. */
  _fragments: Buffer[]
  /** The opcode of the unfinished message, 0 when none is open. */
  _fragmented: number
}

/** ws's receiver of `socket`, when it has the fields the guard relies on. */
export function fragmentReceiverOf (socket: WebSocket): FragmentReceiver | undefined {
  const receiver = (socket as unknown as { _receiver?: Partial<FragmentReceiver> })._receiver
  if (receiver === undefined || !Array.isArray(receiver._fragments) || typeof receiver._fragmented !== 'number') return undefined
  return receiver as FragmentReceiver
}

/**
 * Replaces `fragments[from…]` by one copy when any of them is a view into a larger buffer, so
 * nothing beyond the fragments' own bytes stays reachable from them. Returns the new length.
 */
export function compactFragments (fragments: Buffer[], from: number): number {
  let bytes = 0
  let pinsMore = false
  for (let i = from; i < fragments.length; i++) {
    const fragment = fragments[i] as Buffer
    bytes += fragment.length
    if (fragment.length !== fragment.buffer.byteLength) pinsMore = true
  }
  if (!pinsMore) return fragments.length
  // Its own backing store, not a slice of Node's shared pool, which would pin 8 KiB per copy.
  const copy = Buffer.allocUnsafeSlow(bytes)
  let offset = 0
  for (let i = from; i < fragments.length; i++) offset += (fragments[i] as Buffer).copy(copy, offset)
  fragments.splice(from, fragments.length - from, copy)
  return from + 1
}
