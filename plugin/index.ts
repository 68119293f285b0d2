import fastifyRateLimit from '@fastify/rate-limit'
import fastifyWebsocket from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { TSchema } from 'typebox'
import fp from 'fastify-plugin'
import promClient, { type Registry } from 'prom-client'
import { buildAsyncApiDocument, type AsyncApiDocument, type AsyncApiOptions } from './asyncapi/document.js'
import { registerAsyncApiRoutes } from './asyncapi/routes.js'
import type { Broker } from './broker/broker.js'
import { MemoryBroker } from './broker/memory.js'
import { refuseUpgradesWhileClosing } from './upgrade/closing.js'
import { drainConnections } from './connection/drain.js'
import { FRT_ERR_INVALID_OPTION, FRT_ERR_UNKNOWN_EVENT } from './errors.js'
import type { DisconnectOptions, UserActionResult } from './fleet/actions.js'
import { registerHealthRoutes } from './upgrade/health.js'
import { checkAsyncApiOptions, resolveOptions, type RealtimeOptions } from './options.js'
import { SUBPROTOCOL } from './protocol/frames.js'
import { declareRoute, type RealtimeRoute } from './route.js'
import { guardSockets } from './upgrade/socket-guard.js'
import { createInstance, type RealtimeInstance } from './instance.js'
import { startSweeper } from './connection/sweeper.js'
import { createMetrics, NOOP_METRICS, type PromClient, type RealtimeMetrics } from './telemetry/metrics.js'
import type { EventSchemas, RealtimeRouteOptions } from './types.js'

/** What `app.realtime` exposes. */
export interface RealtimeDecorator {
  /** The broker topics go through. */
  readonly broker: Broker
  /** The registry holding the `ws_*` metrics; undefined when metrics are off. */
  readonly metricsRegistry: Registry | undefined
  /** Open connections on every route of this instance. */
  readonly connectionCount: number
  /** False once draining has begun. */
  readonly accepting: boolean
  /**
   * Stops accepting (readiness and upgrades answer 503 with `Retry-After`), closes every
   * connection with 1012 spread over `drainMs`, and terminates stragglers. Call it on SIGTERM
   * before `app.close()`; `app.close()` drains too if it has not happened.
   */
  drain: () => Promise<void>
  /**
   * Closes every connection of the identity `user` on every node (1008 by default: do not
   * reconnect until the user acts). Resolves once the broker told every node: with Redis, that
   * `PUBLISH` delivered it to each node's subscriber connection (a node away from Redis then
   * misses it); `nodes` says how many.
   */
  disconnectUser: (user: string, options?: DisconnectOptions) => Promise<UserActionResult>
  /**
   * Sends `event` to every connection of `user` on every node, on each route declaring it,
   * serialized by that route's schema; untyped here, typed as `route.sendToUser`.
   */
  sendToUser: (user: string, event: string, data: unknown) => Promise<UserActionResult>
  /**
   * The AsyncAPI 3.0 document of this instance's routes, for a build-time export; call it after
   * `await app.ready()`, once every route is declared. `options` override the plugin's.
   */
  asyncApi: (options?: AsyncApiOptions) => AsyncApiDocument
}

declare module 'fastify' {
  interface FastifyInstance {
    realtime: RealtimeDecorator
    /**
     * Declares a WebSocket route on this instance (its prefix and hooks apply). Chain
     * `.message(type, schemas, handler)` to declare what clients may send.
     */
    wsRoute: <E extends EventSchemas = {}, P extends TSchema = TSchema>(url: string, options?: RealtimeRouteOptions<E, P>) => RealtimeRoute<E, {}, P>
  }
}

const fastifyRealtime: FastifyPluginAsync<RealtimeOptions> = async (fastify, pluginOptions) => {
  const options = resolveOptions(pluginOptions)
  if (fastify.hasDecorator('websocketServer')) {
    throw new FRT_ERR_INVALID_OPTION('@fastify/websocket', 'it is already registered: fastify-realtime registers it itself, remove your registration')
  }
  const ownsBroker = pluginOptions.broker === undefined
  const broker = pluginOptions.broker ?? new MemoryBroker()
  const metrics = resolveMetrics(fastify, pluginOptions.metrics)
  const state = createInstance(options, broker, metrics, fastify.log)
  metrics.trackBufferedBytes(() => bufferedBytesByRoute(state))
  metrics.trackBroker(broker)

  const drain = async (): Promise<void> => {
    state.accepting = false
    state.draining ??= drainConnections(state.connections, options.drainMs, fastify.log)
    await state.draining
  }
  // Added before @fastify/websocket registers its own preClose, which stops listening for
  // upgrades: the drain runs first, while clients can still be told to come back later.
  fastify.addHook('preClose', async () => {
    refuseUpgradesWhileClosing(fastify.server)
    await drain()
  })
  // Its preClose comes after the drain's, so it ends the sockets that never sent a request last.
  guardSockets(fastify, options, metrics)

  await fastify.register(fastifyWebsocket, {
    options: {
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments,
      // Pings are answered by the connection, which logs and counts a peer flooding them.
      autoPong: false,
      perMessageDeflate: options.perMessageDeflate,
      handleProtocols: (protocols: Set<string>) => protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false
    },
    // ws closes the socket itself after a protocol error (1009, 1007...); terminating here, as
    // the default handler does, would cut the close frame that tells the client why.
    errorHandler: (err, _socket, request) => {
      request.log.info({ err: { message: err.message, code: (err as { code?: string }).code } }, 'ws.socket_error')
    },
    preClose: function (this: FastifyInstance, done: () => void) {
      this.websocketServer.close(() => done())
    }
  })
  if (options.upgradeRateLimit > 0 && !fastify.hasDecorator('rateLimit')) {
    // Only routes that ask for it (the WebSocket routes) are limited.
    await fastify.register(fastifyRateLimit, { global: false })
  }

  fastify.decorate('realtime', {
    broker,
    metricsRegistry: metrics.registry,
    get connectionCount () { return state.connections.size },
    get accepting () { return state.accepting },
    drain,
    disconnectUser: async (user: string, options?: DisconnectOptions) => await state.fleet.disconnectUser(user, options),
    sendToUser: async (user: string, event: string, data: unknown) => {
      const routes = state.routes.filter((route) => route.declared.events.has(event))
      if (routes.length === 0) throw new FRT_ERR_UNKNOWN_EVENT(event, 'any route')
      const told = await Promise.all(routes.map(async (route) => await state.fleet.sendToUser(route.declared, user, event, data)))
      return { nodes: Math.max(...told.map((result) => result.nodes)) }
    },
    asyncApi: (overrides: AsyncApiOptions = {}) => buildAsyncApiDocument(documentSources, { ...(options.asyncapi || {}), ...checkAsyncApiOptions(overrides) })
  })
  fastify.decorate('wsRoute', function wsRoute<E extends EventSchemas, P extends TSchema> (this: FastifyInstance, url: string, routeOptions: RealtimeRouteOptions<E, P> = {}) {
    return declareRoute(this, state, url, routeOptions)
  })
  if (options.healthRoutes) registerHealthRoutes(fastify, state)
  const documentSources = {
    get routes () { return state.routes.map((route) => route.declared) },
    commands: state.dispatch.commands,
    authenticated: options.authenticate !== undefined,
    originRestricted: options.allowedOrigins !== undefined
  }
  if (options.asyncapi !== false) {
    const asyncapi = options.asyncapi
    registerAsyncApiRoutes(fastify, () => buildAsyncApiDocument(documentSources, asyncapi), asyncapi, documentSources.authenticated)
  }

  let stopSweeper: (() => void) | undefined
  fastify.addHook('onReady', async () => {
    state.started = true
    // With the broker away, the listener waits for it: actions on users resume when it is back.
    await state.fleet.start().catch((err: unknown) => fastify.log.warn({ err }, 'ws.fleet_unavailable'))
    stopSweeper = startSweeper(state.connections, options)
  })
  fastify.addHook('onClose', async () => {
    metrics.release()
    stopSweeper?.()
    // Every connection has closed: their leaves reach the broker before it may close.
    await state.presence.close()
    await state.fleet.stop().catch(() => {})
    if (ownsBroker) await broker.close()
  })
}

/** fastify-metrics, when registered first, owns the registry: `ws_*` metrics join its `/metrics`. */
function resolveMetrics (fastify: FastifyInstance, option: RealtimeOptions['metrics']): RealtimeMetrics {
  if (option === false) return NOOP_METRICS
  const fastifyMetrics = (fastify as unknown as { metrics?: { client?: PromClient } }).metrics
  const client = option?.client ?? fastifyMetrics?.client ?? promClient
  const registry = option?.registry ?? (fastifyMetrics?.client !== undefined ? fastifyMetrics.client.register : new client.Registry())
  return createMetrics(client, registry)
}

function bufferedBytesByRoute (state: RealtimeInstance): Map<string, number> {
  const totals = new Map<string, number>()
  for (const route of state.routes) {
    let bytes = 0
    for (const connection of route.connections) bytes += connection.bufferedBytes
    totals.set(route.declared.url, bytes)
  }
  return totals
}

/** The plugin: `await app.register(realtime, options)`. */
const plugin = fp(fastifyRealtime, { fastify: '5.x', name: 'fastify-realtime' })
export default plugin
export { plugin as fastifyRealtime }

export { DEFAULTS } from './defaults.js'
export { ASYNCAPI_VERSION, type AsyncApiDocument, type AsyncApiOptions, type AsyncApiServer } from './asyncapi/document.js'
export { asyncApiYaml } from './asyncapi/routes.js'
export { traceLogFields, type TraceLogFields } from './telemetry/log-fields.js'
export { realtimeSampler } from './telemetry/sampling.js'
export * as errors from './errors.js'
export { extractToken, redactUrl } from './upgrade/credentials.js'
export { CLOSE_CODES, CloseCode, ErrorCode, type CloseAdvice, type CloseCodeEntry, type CloseCodeName, type ProtocolErrorCode } from './protocol/codes.js'
export { RealtimeError } from './messages/realtime-error.js'
export type { RealtimeErrorOptions } from './protocol/frames.js'
export { SUBPROTOCOL, type MessageId } from './protocol/frames.js'
export { RealtimeRoute } from './route.js'
export type { Authenticate, RealtimeOptions } from './options.js'
export type { MetricsOptions } from './telemetry/metrics.js'
export type { DisconnectOptions, UserActionResult } from './fleet/actions.js'
export type * from './types.js'
export { BrokerUnavailableError, type Broker, type BrokerMessage, type FleetListener, type OnceClaim, type PresenceDiff, type PresenceEntry, type PresenceListener, type TopicEntry, type TopicHistory, type TopicListener, type TopicPosition } from './broker/broker.js'
export { MemoryBroker, createMemoryBroker, type MemoryBrokerOptions } from './broker/memory.js'
export { ZERO_OFFSET, compareOffsets } from './protocol/offsets.js'
