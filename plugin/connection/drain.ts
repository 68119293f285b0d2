import type { FastifyBaseLogger } from 'fastify'
import type { Connection } from './connection.js'
import { CloseCode } from '../protocol/codes.js'

/**
 * Closes every connection with 1012 so clients reconnect elsewhere and resume. Closes are spread
 * over the first half of `drainMs` with jitter, so the fleet does not reconnect in one spike;
 * each waits for the connection's running handlers so their replies get out. Whoever is still
 * connected at `drainMs` (a peer that never answers the close) is terminated.
 */
export async function drainConnections (connections: Set<Connection>, drainMs: number, log: FastifyBaseLogger): Promise<void> {
  const total = connections.size
  if (total === 0) return
  const startedAt = performance.now()
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, drainMs))
  const spreadMs = drainMs / 2
  log.info({ connections: total, drainMs }, 'ws.drain_started')
  const closes = [...connections].map(async (connection) => {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * spreadMs))
    await Promise.race([connection.whenIdle(), deadline])
    connection.close(CloseCode.SERVICE_RESTART, 'server restarting')
  })
  await Promise.race([Promise.all(closes).then(() => allClosed(connections)), deadline])
  const stragglers = connections.size
  for (const connection of connections) connection.terminate()
  log.info({ connections: total, terminated: stragglers, durationMs: Math.round(performance.now() - startedAt) }, 'ws.drain_finished')
}

async function allClosed (connections: Set<Connection>): Promise<void> {
  while (connections.size > 0) await new Promise((resolve) => setTimeout(resolve, 10))
}
