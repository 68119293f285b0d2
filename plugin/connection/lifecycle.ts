import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { ServedRoute } from '../instance.js'
import { handleFrame } from '../messages/dispatch.js'
import { CloseCode } from '../protocol/codes.js'
import { MAX_TOPIC_LENGTH, welcomeFrame } from '../protocol/frames.js'
import { FRT_ERR_INVALID_TOPIC } from '../errors.js'
import { SubscriptionAbandonedError } from '../topics/hub.js'
import { finishUpgradeSpan } from '../telemetry/tracing.js'
import { Connection } from './connection.js'
import { releaseSlot } from './slots.js'

/** Where a socket keeps its connection, so that one set of listeners serves every socket. */
const kConnection = Symbol('fastify-realtime.connection')
interface ConnectedSocket extends WebSocket {
  [kConnection]: Connection
  on: (event: string, listener: (this: ConnectedSocket, ...args: any[]) => void) => this
  once: (event: string, listener: (this: ConnectedSocket, ...args: any[]) => void) => this
}

/**
 * Turns an upgraded socket into a connection: registered, listened to, welcomed. Listeners go
 * on before anything async, so frames that arrive first are not lost; they are module-level
 * functions, not closures, since an idle connection should cost as little as possible.
 */
export function openConnection (route: ServedRoute, socket: WebSocket, request: FastifyRequest): void {
  const state = route.instance
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
  connection.upgradeSpan = finishUpgradeSpan(request, route.declared.url, connection.id)
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
  if (connection.identity !== undefined) {
    const user = String(connection.identity.id)
    let connections = state.users.get(user)
    if (connections === undefined) {
      connections = new Set()
      state.users.set(user, connections)
    }
    connections.add(connection)
  }
  route.metrics.connectionOpened()
  // The request logger with explicit fields: a child logger per idle connection costs memory.
  request.log.info({ connectionId: connection.id, route: route.declared.url, identity: connection.identity?.id }, 'ws.open')
  if (!state.accepting) {
    connection.close(CloseCode.SERVICE_RESTART, 'server restarting')
    return
  }
  if (route.declared.subscriptions === undefined) {
    welcome(connection, undefined)
    return
  }
  subscribeForServer(connection, route.declared.subscriptions).then((subscriptions) => {
    if (subscriptions !== undefined) welcome(connection, subscriptions)
  }, (err: unknown) => {
    // Without its server-side topics the connection would miss what they carry: the client
    // reconnects, with backoff, and gets them then.
    connection.log.error({ err }, 'ws.server_subscriptions_failed')
    connection.close(CloseCode.INTERNAL_ERROR, 'server subscriptions unavailable')
  })
}

function welcome (connection: Connection, subscriptions: Array<{ topic: string, offset: string, epoch: string }> | undefined): void {
  const state = connection.served.instance
  connection.write(welcomeFrame({
    connectionId: connection.id,
    user: connection.identity === undefined ? undefined : String(connection.identity.id),
    heartbeatMs: state.options.heartbeatMs,
    limits: { maxPayload: state.options.maxPayload, messagesPerSecond: connection.declared.messagesPerSecond },
    expiresAt: connection.identity?.expiresAt,
    subscriptions
  }), '$welcome')
}

/**
 * Subscribes the connection to the topics the route names for it, before it is welcomed, so the
 * welcome lists each with its offset. Undefined when the connection closed meanwhile.
 */
async function subscribeForServer (connection: Connection, topicsOf: NonNullable<ServedRoute['declared']['subscriptions']>): Promise<Array<{ topic: string, offset: string, epoch: string }> | undefined> {
  const topics = [...new Set(await topicsOf(connection))]
  for (const topic of topics) {
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) throw new FRT_ERR_INVALID_TOPIC(JSON.stringify(topic))
  }
  connection.serverTopics = new Set(topics)
  const hub = connection.served.instance.hub
  try {
    return await Promise.all(topics.map(async (topic) => {
      const { offset, epoch } = await hub.subscribe(connection, topic)
      return { topic, offset, epoch }
    }))
  } catch (err) {
    if (err instanceof SubscriptionAbandonedError) return undefined
    throw err
  }
}

function onMessage (this: ConnectedSocket, data: Buffer, isBinary: boolean): void {
  const connection = this[kConnection]
  handleFrame(connection.served.instance.dispatch, connection, data, isBinary)
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
  const route = connection.served
  const state = route.instance
  // The code that describes why the connection ended: ours when we closed it, else the peer's.
  const { code, reason } = connection.sentClose ?? { code: receivedCode, reason: receivedReason.toString() }
  connection.closed = true
  state.connections.delete(connection)
  route.connections.delete(connection)
  if (connection.identity !== undefined) {
    const user = String(connection.identity.id)
    const connections = state.users.get(user)
    if (connections?.delete(connection) === true && connections.size === 0) state.users.delete(user)
  }
  state.hub.unsubscribeAll(connection)
  if (connection.clientBudget !== undefined) state.clientBudgets.release(connection.clientBudget)
  const durationMs = performance.now() - connection.openedAt
  route.metrics.connectionClosed(code, durationMs / 1000)
  connection.request.log.info({ connectionId: connection.id, route: route.declared.url, code, reason, durationMs: Math.round(durationMs) }, 'ws.close')
}
