import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Static, TSchema } from 'typebox'
import type { TopicPosition } from './broker/broker.js'
import { openConnection } from './connection/lifecycle.js'
import { releaseSlot } from './connection/slots.js'
import { FRT_ERR_DUPLICATE_MESSAGE, FRT_ERR_INVALID_OPTION, FRT_ERR_ROUTE_READY } from './errors.js'
import type { RealtimeInstance, ServedRoute } from './instance.js'
import type { UserActionResult } from './fleet/actions.js'
import { assertName, compileEvents, compileMessage, compilePresence, type CompiledRoute } from './messages/compile.js'
import { corkForTurn } from './connection/turn-cork.js'
import { numberOption } from './options.js'
import type { EventSchemas, MessageHandler, MessageSchemas, PresenceOptions, RealtimeRouteOptions } from './types.js'
import { admitUpgrade, closeRefusedUpgrade, recordUpgradeRateLimited, verifyUpgrade } from './upgrade/guards.js'

/**
 * A declared WebSocket route. Its type carries every message and event schema, so a client can
 * be typed from it: `export type ChatRoute = typeof chat`.
 */
export class RealtimeRoute<E extends EventSchemas = {}, M extends Record<string, MessageSchemas> = {}, P extends TSchema = TSchema> {
  /** Type-level record of the route's schemas (`presence`: a member's info); it has no runtime value. */
  declare readonly types: { events: E, messages: M, presence: P }
  /** The URL as served, prefix included. */
  readonly url: string
  readonly #served: ServedRoute

  constructor (served: ServedRoute) {
    this.url = served.declared.url
    this.#served = served
  }

  /**
   * Declares a client message type. `data` is validated before `handler` runs; the value the
   * handler returns is serialized by `reply` and sent to clients that gave an `id`.
   * `messagesPerSecond` gives the type its own per-connection budget instead of the route's.
   */
  message<T extends string, S extends MessageSchemas>(type: T, schemas: S, handler: MessageHandler<S, E>): RealtimeRoute<E, M & { [K in T]: S }, P> {
    if (this.#served.instance.started) throw new FRT_ERR_ROUTE_READY(type, this.url)
    assertName('message type', type)
    if (this.#served.declared.messages.has(type)) throw new FRT_ERR_DUPLICATE_MESSAGE(type, this.url)
    if (typeof handler !== 'function') throw new FRT_ERR_INVALID_OPTION('handler', `message type "${type}" needs a handler function`)
    if (schemas.messagesPerSecond !== undefined) numberOption(`messagesPerSecond of "${type}"`, schemas.messagesPerSecond)
    this.#served.declared.messages.set(type, compileMessage(schemas, handler))
    return this as unknown as RealtimeRoute<E, M & { [K in T]: S }, P>
  }

  /** Publishes a declared event on a topic; resolves with the offset the broker gave it. */
  async publish<K extends keyof E & string>(topic: string, event: K, data: Static<E[K]>): Promise<TopicPosition> {
    return await this.#served.instance.publish(this.#served.declared, topic, event, data)
  }

  /**
   * Sends a declared event to every connection of the identity `user` on this route, on every
   * node; resolves once the broker told every node (see `app.realtime.disconnectUser`).
   */
  async sendToUser<K extends keyof E & string>(user: string, event: K, data: Static<E[K]>): Promise<UserActionResult> {
    return await this.#served.instance.fleet.sendToUser(this.#served.declared, user, event, data)
  }

  /** Connections currently open on this route. */
  get connectionCount (): number {
    return this.#served.connections.size
  }
}

/** Registers the HTTP side of a WebSocket route on `instance` (so its prefix and hooks apply). */
export function declareRoute<E extends EventSchemas, P extends TSchema> (
  instance: FastifyInstance,
  state: RealtimeInstance,
  url: string,
  options: RealtimeRouteOptions<E, P>
): RealtimeRoute<E, {}, P> {
  if (options.subscriptions !== undefined && typeof options.subscriptions !== 'function') {
    throw new FRT_ERR_INVALID_OPTION('subscriptions', 'expected a function (connection) => topics')
  }
  const binary = options.binary ?? 'error'
  if (binary !== 'error' && binary !== 'close' && typeof binary !== 'function') {
    throw new FRT_ERR_INVALID_OPTION('binary', `expected 'error', 'close' or a function, got ${String(binary)}`)
  }
  const messagesPerSecond = numberOption('messagesPerSecond', options.messagesPerSecond ?? state.options.messagesPerSecond)
  const fullUrl = joinUrl(instance.prefix, url)
  const compiled: CompiledRoute = {
    url: fullUrl,
    messages: new Map(),
    events: compileEvents(options.events ?? {}),
    authorizeSubscribe: options.authorizeSubscribe,
    authorizeMessage: options.authorizeMessage,
    binary,
    messagesPerSecond,
    presence: compilePresence(options.presence as PresenceOptions | undefined),
    subscriptions: options.subscriptions as CompiledRoute['subscriptions']
  }
  const served: ServedRoute = { declared: compiled, connections: new Set(), metrics: state.metrics.forRoute(fullUrl), instance: state }
  state.routes.push(served)
  const upgradeRateLimit = state.options.upgradeRateLimit
  // Read by other plugins when present, so typed loosely: neither needs to be installed.
  const routeConfig: Record<string, unknown> = {
    // fastify-metrics: upgrades are counted by ws_* metrics, not as HTTP requests whose
    // "latency" would be a refusal's or a hijack's.
    disableMetrics: true
  }
  if (upgradeRateLimit > 0) {
    routeConfig.rateLimit = { max: upgradeRateLimit, timeWindow: 60_000, onExceeded: (request: FastifyRequest) => recordUpgradeRateLimited(served, request) }
  }
  instance.route({
    method: 'GET',
    url,
    // @fastify/rate-limit appends its own onRequest hook after these: readiness first.
    onRequest: [async (request, reply) => await admitUpgrade(served, request, reply)],
    preValidation: [async (request, reply) => await verifyUpgrade(served, request, reply)],
    onSend: [async (request, reply) => { await closeRefusedUpgrade(request, reply) }],
    onResponse: [async (request) => { releaseSlot(state, request) }],
    preHandler: [corkHandshake],
    config: routeConfig,
    handler: upgradeRequired,
    wsHandler: (socket, request) => openConnection(served, socket, request)
  })
  return new RealtimeRoute<E, {}, P>(served)
}

/**
 * The last hook before ws writes the 101: corked until the end of the tick, the handshake
 * response and the `$welcome` frame leave in one write instead of two.
 */
function corkHandshake (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  // Requests made by `injectWS` have no TCP socket to cork.
  const socket = request.raw.socket as Socket | undefined
  if (request.ws && typeof socket?.cork === 'function') corkForTurn(socket)
  done()
}

function upgradeRequired (_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(426).header('upgrade', 'websocket').send({ error: 'Upgrade Required', message: 'connect with a WebSocket client' })
}

function joinUrl (prefix: string, url: string): string {
  if (prefix === '') return url
  return prefix.endsWith('/') && url.startsWith('/') ? prefix + url.slice(1) : prefix + url
}
