import { connect, type RealtimeConnection, type Target } from './connection.js'
import { now } from './clock.js'
import { backoffDelay } from '../plugin/protocol/backoff.js'
import { pause } from './pacing.js'
import type { Recorder } from './recorder.js'

/**
 * Connects, retrying failed handshakes with backoff, until a `$welcome` or `signal` aborts.
 * `droppedAt`, when the previous connection was closed by the server, starts the clock of a
 * reconnect: the first attempt is itself delayed by backoff, as a well-behaved client does,
 * and the time until the next `$welcome` is recorded as `reconnect`.
 */
export async function connectWithBackoff (target: Target, recorder: Recorder, backoffMs: readonly [number, number], signal: AbortSignal, droppedAt?: number): Promise<RealtimeConnection | undefined> {
  let attempt = 0
  if (droppedAt !== undefined) await pause(backoffDelay(attempt++, { minMs: backoffMs[0], maxMs: backoffMs[1] }), signal)
  while (!signal.aborted) {
    try {
      const connection = await connect(target, recorder)
      if (droppedAt !== undefined) {
        recorder.count('reconnects', 1, droppedAt)
        recorder.observe('reconnect', now() - droppedAt, droppedAt)
      }
      if (signal.aborted) {
        await connection.close()
        return undefined
      }
      return connection
    } catch {
      await pause(backoffDelay(attempt++, { minMs: backoffMs[0], maxMs: backoffMs[1] }), signal)
    }
  }
  return undefined
}
