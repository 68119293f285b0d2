import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Static } from 'typebox'
import type { WebSocket } from 'ws'
import type { TopicPosition } from './broker/broker.js'
import { Connection } from './connection.js'
import { handleFrame } from './dispatch.js'
import { FRT_ERR_DUPLICATE_MESSAGE, FRT_ERR_INVALID_OPTION, FRT_ERR_ROUTE_READY } from './errors.js'
import { BEARER_PROTOCOL_PREFIX, CloseCode, SUBPROTOCOL, welcomeFrame } from './protocol.js'
import type { RealtimeState } from './state.js'
import { assertName, compileEvents, compileMessage, type CompiledRoute } from './route-table.js'
import type { EventSchemas, MessageHandler, MessageSchemas, RealtimeRouteOptions } from './types.js'

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
   */
  message<T extends string, S extends MessageSchemas>(type: T, schemas: S, handler: MessageHandler<S, E>): RealtimeRoute<E, M & { [K in T]: S }> {
    if (this.#state.started) throw new FRT_ERR_ROUTE_READY(type, this.url)
    assertName('message type', type)
    if (this.#compiled.messages.has(type)) throw new FRT_ERR_DUPLICATE_MESSAGE(type, this.url)
    if (typeof handler !== 'function') throw new FRT_ERR_INVALID_OPTION('handler', `message type "${type}" needs a handler function`)
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
  const messagesPerSecond = options.messagesPerSecond ?? state.options.messagesPerSecond
  if (!Number.isFinite(messagesPerSecond) || messagesPerSecond < 0) {
    throw new FRT_ERR_INVALID_OPTION('messagesPerSecond', `expected a number >= 0, got ${messagesPerSecond}`)
  }
  const compiled: CompiledRoute = {
    url: joinUrl(instance.prefix, url),
    messages: new Map(),
    events: compileEvents(options.events ?? {}),
    authorizeSubscribe: options.authorizeSubscribe,
    binary,
    messagesPerSecond,
    connections: new Set()
  }
  instance.route({
    method: 'GET',
    url,
    onRequest: async (request, reply) => {
      if (request.ws) return refuseUpgrade(state, request, reply)
    },
    handler: upgradeRequired,
    wsHandler: (socket, request) => openConnection(state, compiled, socket, request)
  })
  return new RealtimeRoute<E, {}>(compiled, state)
}

/**
 * Plain-HTTP refusals that must happen before the handshake completes (PROTOCOL.md). The socket
 * of a refused upgrade is destroyed once answered, so the answer says `Connection: close`: a
 * client with a keep-alive pool would otherwise send its next request into a dead socket.
 */
function refuseUpgrade (state: RealtimeState, request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  if (!state.accepting) {
    request.log.info({ reason: 'draining' }, 'ws.rejected')
    return reply.code(503).header('connection', 'close').header('retry-after', '1').send({ error: 'Service Unavailable', message: 'server is shutting down' })
  }
  const offered = request.headers['sec-websocket-protocol']
  if (offered === undefined) return undefined
  const versions = offered.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '' && !entry.startsWith(BEARER_PROTOCOL_PREFIX))
  if (versions.length > 0 && !versions.includes(SUBPROTOCOL)) {
    request.log.info({ reason: 'subprotocol' }, 'ws.rejected')
    return reply.code(400).header('connection', 'close').send({ error: 'Bad Request', message: `unsupported subprotocol: this server speaks ${SUBPROTOCOL}` })
  }
  return undefined
}

function upgradeRequired (_request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(426).header('upgrade', 'websocket').send({ error: 'Upgrade Required', message: 'connect with a WebSocket client' })
}

function openConnection (state: RealtimeState, route: CompiledRoute, socket: WebSocket, request: FastifyRequest): void {
  let connection: Connection
  try {
    connection = new Connection(socket, request, route)
  } catch (err) {
    request.log.error({ err }, 'ws.internal_error')
    socket.close(CloseCode.INTERNAL_ERROR, 'internal error')
    return
  }
  // Listeners go on before anything async: frames that arrive first are not lost.
  socket.on('message', (data, isBinary) => handleFrame(state.dispatch, connection, data as Buffer, isBinary))
  socket.on('pong', () => { connection.alive = true })
  socket.once('close', (code, reason) => {
    state.connections.delete(connection)
    route.connections.delete(connection)
    state.hub.unsubscribeAll(connection)
    connection.log.info({ code, reason: reason.toString(), durationMs: Math.round(performance.now() - connection.openedAt) }, 'ws.close')
  })
  state.connections.add(connection)
  route.connections.add(connection)
  connection.log.info('ws.open')
  if (!state.accepting) {
    connection.close(CloseCode.GOING_AWAY, 'server shutting down')
    return
  }
  connection.write(welcomeFrame({
    connectionId: connection.id,
    heartbeatMs: state.options.heartbeatMs,
    limits: { maxPayload: state.options.maxPayload, messagesPerSecond: route.messagesPerSecond }
  }))
}

function joinUrl (prefix: string, url: string): string {
  if (prefix === '') return url
  return prefix.endsWith('/') && url.startsWith('/') ? prefix + url.slice(1) : prefix + url
}
