import type { FastifyInstance } from 'fastify'
import { DEFAULTS } from '../defaults.js'
import type { RealtimeInstance } from '../instance.js'

/**
 * `/health/live` answers while the process serves HTTP; `/health/ready` turns 503 as soon as
 * the node stops accepting connections, so a load balancer sends new clients elsewhere first.
 */
export function registerHealthRoutes (instance: FastifyInstance, state: RealtimeInstance): void {
  instance.get('/health/live', async () => ({ status: 'ok' }))
  instance.get('/health/ready', async (_request, reply) => {
    if (state.accepting) return { status: 'ready' }
    return await reply.code(503).header('retry-after', String(DEFAULTS.unavailableRetryAfterSeconds)).send({ status: 'draining' })
  })
}
