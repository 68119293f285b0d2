import type { Connection } from './connection.js'
import { CloseCode } from '../protocol/codes.js'

export interface SweepOptions {
  heartbeatMs: number
  idleTimeoutMs: number
  incompleteMessageTimeoutMs: number
}

/** Expiry of credentials is checked at least this often. */
const EXPIRY_CHECK_MS = 1_000

/**
 * One timer for all connections, not one per socket, so an idle connection costs no timer. Each
 * sweep closes connections idle for `idleTimeoutMs` (4000), whose credentials expired (4003) or
 * whose fragmented message is unfinished after `incompleteMessageTimeoutMs` (1008);
 * every `heartbeatMs` it pings each connection and terminates those that missed the previous
 * ping, since a dead peer would never complete a close handshake.
 */
export function startSweeper (connections: Iterable<Connection>, options: SweepOptions): () => void {
  const { heartbeatMs, idleTimeoutMs, incompleteMessageTimeoutMs } = options
  const tickMs = Math.max(10, Math.min(
    heartbeatMs > 0 ? heartbeatMs : Infinity,
    idleTimeoutMs > 0 ? idleTimeoutMs / 4 : Infinity,
    incompleteMessageTimeoutMs > 0 ? incompleteMessageTimeoutMs / 4 : Infinity,
    EXPIRY_CHECK_MS
  ))
  let lastHeartbeatAt = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    const heartbeat = heartbeatMs > 0 && now - lastHeartbeatAt >= heartbeatMs - tickMs / 2
    if (heartbeat) lastHeartbeatAt = now
    const wallClock = Date.now()
    for (const connection of connections) {
      if (!connection.isOpen) continue
      const expiresAt = connection.identity?.expiresAt
      if (expiresAt !== undefined && wallClock >= expiresAt) {
        connection.log.info('ws.credentials_expired')
        connection.close(CloseCode.CREDENTIALS_EXPIRED, 'credentials expired')
      } else if (incompleteMessageTimeoutMs > 0 && connection.incompleteSince !== undefined && now - connection.incompleteSince >= incompleteMessageTimeoutMs) {
        connection.log.warn({ incompleteMs: Math.round(now - connection.incompleteSince) }, 'ws.message_timeout')
        connection.served.metrics.protocolError('MESSAGE_TIMEOUT')
        connection.close(CloseCode.POLICY_VIOLATION, 'message not completed in time')
      } else if (idleTimeoutMs > 0 && now - connection.lastMessageAt >= idleTimeoutMs) {
        connection.log.info('ws.idle_timeout')
        connection.close(CloseCode.IDLE_TIMEOUT, 'idle timeout')
      } else if (heartbeat) {
        if (!connection.alive) {
          connection.log.info('ws.heartbeat_timeout')
          connection.terminate()
          continue
        }
        connection.alive = false
        connection.ping()
      }
    }
  }, tickMs)
  timer.unref()
  return () => clearInterval(timer)
}
