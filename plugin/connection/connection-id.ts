import { randomBytes } from 'node:crypto'

const ID_BYTES = 12
const POOL_IDS = 256
let pool = Buffer.alloc(0)
let offset = 0

/**
 * A random, unguessable connection id (16 base64url characters). Random bytes are drawn 256 ids
 * at a time: one call into the system's generator per connection was a measurable share of a
 * handshake.
 */
export function nextConnectionId (): string {
  if (offset + ID_BYTES > pool.length) {
    pool = randomBytes(ID_BYTES * POOL_IDS)
    offset = 0
  }
  const id = pool.toString('base64url', offset, offset + ID_BYTES)
  offset += ID_BYTES
  return id
}
