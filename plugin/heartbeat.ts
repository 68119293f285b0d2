import type { Connection } from './connection.js'

/**
 * One timer for all connections (not one per socket): every `intervalMs` each connection is
 * pinged, and one that has not answered the previous ping is terminated, since a dead peer
 * would never complete a close handshake.
 */
export function startHeartbeat (connections: Iterable<Connection>, intervalMs: number): () => void {
  const timer = setInterval(() => {
    for (const connection of connections) {
      if (!connection.alive) {
        connection.log.info('ws.heartbeat_timeout')
        connection.terminate()
        continue
      }
      connection.alive = false
      connection.ping()
    }
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
