import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'
import type { WebSocket } from 'ws'
import type { TopicPosition } from './broker/broker.js'
import { Connection } from './connection.js'
import { handleFrame } from './dispatch.js'
import { FRT_ERR_DUPLICATE_MESSAGE, FRT_ERR_INVALID_OPTION, FRT_ERR_ROUTE_READY } from './errors.js'
import { numberOption } from './options.js'
import { CloseCode, welcomeFrame } from './protocol.js'
import { assertName, compileEvents, compileMessage, type CompiledRoute } from './route-table.js'
import type { RealtimeState } from './state.js'
import { finishUpgradeSpan } from './telemetry/tracing.js'
import type { EventSchemas, MessageHandler, MessageSchemas, RealtimeRouteOptions } from './types.js'
import { admitUpgrade, closeRefusedUpgrade, recordUpgradeRateLimited, releaseSlot, verifyUpgrade } from './upgrade-guards.js'

/**
 * A declared WebSocket route. Its type carries every message and event schema, so a client can
 * be typed from it: `export type ChatRoute = typeof chat`.
 */
export class RealtimeRoute<E extends EventSchemas = {}, M extends Record<string, MessageSchemas> = {}> {
  /** Type-level record of the route's schemas; it has no runtime value. */
  declare readonly types: { events: E, messages: M }
  /** The URL as served, prefix included. */
  readonly url: string
  readonly #compiled: CompiledRoute
  readonly #state: RealtimeState

  constructor (compiled: CompiledRoute, state: RealtimeState) {
    this.url = compiled.url
    this.#compiled = compiled
    this.#state = state
  }

  /**
   * Declares a client message type. `data` is validated before `handler` runs; the value the
   * handler returns is serialized by `reply` and sent to clients that gave an `id`.
   * `messagesPerSecond` gives the type its own per-connection budget instead of the route's.
   */
  message<T extends string, S extends MessageSchemas>(type: T, schemas: S, handler: MessageHandler<S, E>): RealtimeRoute<E, M & { [K in T]: S }> {
    if (this.#state.started) throw new FRT_ERR_ROUTE_READY(type, this.url)
    assertName('message type', type)
    if (this.#compiled.messages.has(type)) throw new FRT_ERR_DUPLICATE_MESSAGE(type, this.url)
    if (typeof handler !== 'function') throw new FRT_ERR_INVALID_OPTION('handler', `message type "${type}" needs a handler function`)
    if (schemas.messagesPerSecond !== undefined) numberOption(`messagesPerSecond of "${type}"`, schemas.messagesPerSecond)
    this.#compiled.messages.set(type, compileMessage(schemas, handler))
    return this as unknown as RealtimeRoute<E, M & { [K in T]: S }>
  }

  /** Publishes a declared event on a topic; resolves with the offset the broker gave it. */
  async publish<K extends keyof E & string>(topic: string, event: K, data: Static<E[K]>): Promise<TopicPosition> {
    return await this.#state.publish(this.#compiled, topic, event, data)
  }

  /** Connections currently open on this route. */
  get connectionCount (): number {
    return this.#compiled.connections.size
  }
}

/** Registers the HTTP side of a WebSocket route on `instance` (so its prefix and hooks apply). */
export function declareRoute<E extends EventSchemas> (
  instance: FastifyInstance,
  state: RealtimeState,
  url: string,
  options: RealtimeRouteOptions<E>
): RealtimeRoute<E, {}> {
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
    connections: new Set(),
    metrics: state.metrics.forRoute(fullUrl),
    state
  }
  state.routes.push(compiled)
  const upgradeRateLimit = state.options.upgradeRateLimit
  // Read by other plugins when present, so typed loosely: neither needs to be installed.
  const routeConfig: Record<string, unknown> = {
    // fastify-metrics: upgrades are counted by ws_* metrics, not as HTTP requests whose
    // "latency" would be a refusal's or a hijack's.
    disableMetrics: true
  }
  if (upgradeRateLimit > 0) {
    routeConfig.rateLimit = { max: upgradeRateLimit, timeWindow: 60_000, onExceeded: (request: FastifyRequest) => recordUpgradeRateLimited(compiled, request) }
  }
  instance.route({
    method: 'GET',
    url,
    // @fastify/rate-limit appends its own onRequest hook after these: readiness first.
    onRequest: [async (request, reply) => await admitUpgrade(state, compiled, request, reply)],
    preValidation: [async (request, reply) => await verifyUpgrade(state, compiled, request, reply)],
    onSend: [async (request, reply) => { await closeRefusedUpgrade(request, reply) }],
    onResponse: [async (request) => { releaseSlot(state, request) }],
    preHandler: [corkHandshake],
    config: routeConfig,
    handler: upgradeRequired,
    wsHandler: (socket, request) => openConnection(state, compiled, socket, request)
  })
  return new RealtimeRoute<E, {}>(compiled, state)
}

/**
 * The last hook before ws writes the 101: corked until the end of the tick, the handshake
 * response and the `$welcome` frame leave in one write instead of two.
 */
function corkHandshake (request: FastifyRequest, _reply: FastifyReply, done: () => void): void {
  // Requests made by `injectWS` have no TCP socket to cork.
  const socket = request.raw.socket as Socket | undefined
  if (request.ws && typeof socket?.cork === 'function') {
    socket.cork()
    process.nextTick(() => socket.uncork())
  }
  done()
}

function upgradeRequired (_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(426).header('upgrade', 'websocket').send({ error: 'Upgrade Required', message: 'connect with a WebSocket client' })
}

/** Where a socket keeps its connection, so that one set of listeners serves every socket. */
const kConnection = Symbol('fastify-realtime.connection')
interface ConnectedSocket extends WebSocket {
  [kConnection]: Connection
  on: (event: string, listener: (this: ConnectedSocket, ...args: any[]) => void) => this
  once: (event: string, listener: (this: ConnectedSocket, ...args: any[]) => void) => this
}

function openConnection (state: RealtimeState, route: CompiledRoute, socket: WebSocket, request: FastifyRequest): void {
  releaseSlot(state, request)
  const identity = state.identities.get(request)
  state.identities.delete(request)
  let connection: Connection
  try {
    connection = new Connection(socket, request, route, identity, state.options)
  } catch (err) {
    request.log.error({ err }, 'ws.internal_error')
    socket.close(CloseCode.INTERNAL_ERROR, 'internal error')
    return
  }
  connection.upgradeSpan = finishUpgradeSpan(request, route.url, connection.id)
  // Listeners go on before anything async: frames that arrive first are not lost. They are
  // module-level functions, not closures: an idle connection should cost as little as possible.
  const connected = socket as ConnectedSocket
  connected[kConnection] = connection
  connected.on('message', onMessage)
  connected.on('ping', onPing)
  connected.on('pong', onPong)
  connected.on('error', onError)
  connected.once('close', onClose)
  connection.clientBudget = state.clientBudgets.acquire(request, identity)
  state.connections.add(connection)
  route.connections.add(connection)
  route.metrics.connectionOpened()
  // The request logger with explicit fields: a child logger per idle connection costs memory.
  request.log.info({ connectionId: connection.id, route: route.url, identity: connection.identity?.id }, 'ws.open')
  if (!state.accepting) {
    connection.close(CloseCode.SERVICE_RESTART, 'server restarting')
    return
  }
  connection.write(welcomeFrame({
    connectionId: connection.id,
    heartbeatMs: state.options.heartbeatMs,
    limits: { maxPayload: state.options.maxPayload, messagesPerSecond: route.messagesPerSecond }
  }), '$welcome')
}

function onMessage (this: ConnectedSocket, data: Buffer, isBinary: boolean): void {
  const connection = this[kConnection]
  handleFrame(connection.compiledRoute.state.dispatch, connection, data, isBinary)
}

function onPing (this: ConnectedSocket, data: Buffer): void {
  this[kConnection].answerPing(data)
}

function onPong (this: ConnectedSocket): void {
  this[kConnection].alive = true
}

function onError (this: ConnectedSocket, err: Error): void {
  this[kConnection].noteSocketError(err)
}

function onClose (this: ConnectedSocket, receivedCode: number, receivedReason: Buffer): void {
  const connection = this[kConnection]
  const route = connection.compiledRoute
  const { state } = route
  // The code that describes why the connection ended: ours when we closed it, else the peer's.
  const { code, reason } = connection.sentClose ?? { code: receivedCode, reason: receivedReason.toString() }
  connection.closed = true
  state.connections.delete(connection)
  route.connections.delete(connection)
  state.hub.unsubscribeAll(connection)
  if (connection.clientBudget !== undefined) state.clientBudgets.release(connection.clientBudget)
  const durationMs = performance.now() - connection.openedAt
  route.metrics.connectionClosed(code, durationMs / 1000)
  connection.request.log.info({ connectionId: connection.id, route: route.url, code, reason, durationMs: Math.round(durationMs) }, 'ws.close')
}

function joinUrl (prefix: string, url: string): string {
  if (prefix === '') return url
  return prefix.endsWith('/') && url.startsWith('/') ? prefix + url.slice(1) : prefix + url
}
