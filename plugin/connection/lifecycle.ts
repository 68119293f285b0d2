import type { FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { ServedRoute } from '../instance.js'
import { handleFrame } from '../messages/dispatch.js'
import { CloseCode } from '../protocol/codes.js'
import { welcomeFrame } from '../protocol/frames.js'
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
  connection.write(welcomeFrame({
    connectionId: connection.id,
    heartbeatMs: state.options.heartbeatMs,
    limits: { maxPayload: state.options.maxPayload, messagesPerSecond: route.declared.messagesPerSecond },
    expiresAt: connection.identity?.expiresAt
  }), '$welcome')
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
