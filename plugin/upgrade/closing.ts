import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { DEFAULTS } from '../defaults.js'

const REFUSAL = `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: ${DEFAULTS.unavailableRetryAfterSeconds}\r\nContent-Length: 0\r\n\r\n`

function refuseUpgrade (_request: IncomingMessage, socket: Duplex): void {
  socket.on('error', () => {})
  // The socket left the HTTP server's care when it asked to upgrade: end it ourselves.
  socket.end(REFUSAL, () => socket.destroy())
}

/**
 * Once `app.close()` has begun, Fastify answers every request it routes with an early 503 that
 * skips hooks. `@fastify/websocket` routes upgrades through Fastify, and only a hook would end
 * an upgrade's socket: each upgrade during the drain would leave a half-open socket that
 * `app.close()` then waits on for as long as clients keep reconnecting. From then on, upgrades
 * are answered here (503 with `Retry-After`) and their sockets closed. Nothing else may upgrade
 * on a server that is closing.
 */
export function refuseUpgradesWhileClosing (server: Server): void {
  server.removeAllListeners('upgrade')
  server.on('upgrade', refuseUpgrade)
}
