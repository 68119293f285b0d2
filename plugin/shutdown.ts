import type { Connection } from './connection.js'
import { CloseCode } from './protocol.js'

/**
 * Closes every connection with 1001 and waits for the close handshakes, terminating whoever has
 * not finished within `timeoutMs` (a peer that stopped reading never answers).
 */
export async function closeConnections (connections: Set<Connection>, timeoutMs: number): Promise<void> {
  if (connections.size === 0) return
  for (const connection of connections) connection.close(CloseCode.GOING_AWAY, 'server shutting down')
  const deadline = Date.now() + timeoutMs
  while (connections.size > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  for (const connection of connections) connection.terminate()
}
