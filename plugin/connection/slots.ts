import type { FastifyRequest } from 'fastify'
import type { RealtimeInstance } from '../instance.js'

/*
 * Connection slots under `maxConnections`: an upgrade admitted below the cap holds one until it
 * becomes a connection (which then counts itself) or fails, so a burst of handshakes cannot
 * overshoot the cap while they are in flight.
 */

/** Frees the connection slot an upgrade reserved, once it became a connection or failed. */
export function releaseSlot (state: RealtimeInstance, request: FastifyRequest): void {
  const onSocketClose = state.reservations.get(request)
  if (onSocketClose === undefined) return
  state.reservations.delete(request)
  state.pendingUpgrades--
  // An open connection must not keep a listener per socket for a slot it no longer holds.
  request.raw.socket.removeListener('close', onSocketClose)
}

export function reserveSlot (state: RealtimeInstance, request: FastifyRequest): void {
  // A handshake that ws aborts (or a client that vanishes) reaches neither the handler nor onResponse.
  const onSocketClose = (): void => releaseSlot(state, request)
  state.reservations.set(request, onSocketClose)
  state.pendingUpgrades++
  request.raw.socket.once('close', onSocketClose)
}
