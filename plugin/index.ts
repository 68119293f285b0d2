import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { MemoryBroker } from './broker/memory.js'
import { FRT_ERR_INVALID_OPTION } from './errors.js'
import { registerHealthRoutes } from './health.js'
import { startHeartbeat } from './heartbeat.js'
import { resolveOptions, type RealtimeOptions } from './options.js'
import { SUBPROTOCOL } from './protocol.js'
import { declareRoute, type RealtimeRoute } from './route.js'
import { closeConnections } from './shutdown.js'
import { createState } from './state.js'
import type { Broker } from './broker/broker.js'
import type { EventSchemas, RealtimeRouteOptions } from './types.js'

/** What `app.realtime` exposes. */
export interface RealtimeDecorator {
  /** The broker topics go through. */
  readonly broker: Broker
  /** Open connections on every route of this instance. */
  readonly connectionCount: number
  /** False once the server has begun closing. */
  readonly accepting: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: RealtimeDecorator
    /**
     * Declares a WebSocket route on this instance (its prefix and hooks apply). Chain
     * `.message(type, schemas, handler)` to declare what clients may send.
     */
    wsRoute: <E extends EventSchemas = {}>(url: string, options?: RealtimeRouteOptions<E>) => RealtimeRoute<E, {}>
  }
}

/** How long closing the server waits for close handshakes before terminating sockets. */
const CLOSE_HANDSHAKE_TIMEOUT_MS = 1_000

const fastifyRealtime: FastifyPluginAsync<RealtimeOptions> = async (fastify, pluginOptions) => {
  const options = resolveOptions(pluginOptions)
  if (fastify.hasDecorator('websocketServer')) {
    throw new FRT_ERR_INVALID_OPTION('@fastify/websocket', 'it is already registered: fastify-realtime registers it itself, remove your registration')
  }
  const ownsBroker = pluginOptions.broker === undefined
  const broker = pluginOptions.broker ?? new MemoryBroker()
  const state = createState(options, broker, fastify.log)

  await fastify.register(fastifyWebsocket, {
    options: {
      maxPayload: options.maxPayload,
      perMessageDeflate: options.perMessageDeflate,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false
    },
    // ws closes the socket itself after a protocol error (1009, 1007...); terminating here, as
    // the default handler does, would cut the close frame that tells the client why.
    errorHandler: (err, _socket, request) => {
      request.log.info({ err }, 'ws.socket_error')
    },
    preClose: function (this: FastifyInstance, done: () => void) {
      state.accepting = false
      closeConnections(state.connections, CLOSE_HANDSHAKE_TIMEOUT_MS)
        .then(() => this.websocketServer.close(() => done()))
        .catch(done)
    }
  })

  fastify.decorate('realtime', {
    broker,
    get connectionCount () { return state.connections.size },
    get accepting () { return state.accepting }
  })
  fastify.decorate('wsRoute', function wsRoute<E extends EventSchemas> (this: FastifyInstance, url: string, routeOptions: RealtimeRouteOptions<E> = {}) {
    return declareRoute(this, state, url, routeOptions)
  })
  if (options.healthRoutes) registerHealthRoutes(fastify, state)

  let stopHeartbeat: (() => void) | undefined
  fastify.addHook('onReady', async () => {
    state.started = true
    if (options.heartbeatMs > 0) stopHeartbeat = startHeartbeat(state.connections, options.heartbeatMs)
  })
  fastify.addHook('onClose', async () => {
    stopHeartbeat?.()
    if (ownsBroker) await broker.close()
  })
}

/** The plugin: `await app.register(realtime, options)`. */
const plugin = fp(fastifyRealtime, { fastify: '5.x', name: 'fastify-realtime' })
export default plugin
export { plugin as fastifyRealtime }

export { DEFAULTS } from './defaults.js'
export * as errors from './errors.js'
export { CloseCode, ErrorCode, RealtimeError, SUBPROTOCOL, type MessageId, type ProtocolErrorCode, type RealtimeErrorOptions } from './protocol.js'
export { RealtimeRoute } from './route.js'
export type { RealtimeOptions } from './options.js'
export type * from './types.js'
export { BrokerUnavailableError, type Broker, type BrokerMessage, type TopicEntry, type TopicHistory, type TopicListener, type TopicPosition } from './broker/broker.js'
export { MemoryBroker, createMemoryBroker, type MemoryBrokerOptions } from './broker/memory.js'
export { ZERO_OFFSET, compareOffsets } from './broker/offset.js'
