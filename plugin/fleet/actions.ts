import type { FastifyBaseLogger } from 'fastify'
import type { Broker } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { FRT_ERR_INVALID_OPTION, FRT_ERR_UNKNOWN_EVENT } from '../errors.js'
import type { CompiledRoute } from '../messages/compile.js'
import { CloseCode } from '../protocol/codes.js'
import { SharedText } from '../protocol/framing.js'
import { eventFrame } from '../protocol/frames.js'
import type { RealtimeMetrics } from '../telemetry/metrics.js'

/** How `disconnectUser` closes: a code a client may be sent, and a reason (123 bytes at most). */
export interface DisconnectOptions {
  /** 1000, 1008 (the default: policy, do not reconnect until the user acts), 1011, or 3000–4999. */
  code?: number
  reason?: string
}

/** What a user action reached: the nodes the broker told (every node, this one included). */
export interface UserActionResult {
  nodes: number
}

type FleetMessage =
  | { a: 'disconnect', u: string, c: number, r: string }
  | { a: 'send', u: string, route: string, e: string, d: string }

/** Where this node's connections of one user are, by identity id. */
export type ConnectionsOfUser = (user: string) => Iterable<Connection> | undefined

const DEFAULT_REASON = 'disconnected by the server'

/**
 * Actions on a user, wherever its connections are: the node that acts broadcasts one message
 * through the broker and every node, itself included, applies it to the user's connections it
 * holds. Events are serialized once, by the sending route's schema.
 */
export class FleetActions {
  readonly #broker: Broker
  readonly #connectionsOf: ConnectionsOfUser
  readonly #metrics: RealtimeMetrics
  readonly #log: FastifyBaseLogger
  readonly #listener = (message: string): void => this.#heard(message)

  constructor (broker: Broker, connectionsOf: ConnectionsOfUser, metrics: RealtimeMetrics, log: FastifyBaseLogger) {
    this.#broker = broker
    this.#connectionsOf = connectionsOf
    this.#metrics = metrics
    this.#log = log
  }

  async start (): Promise<void> {
    await this.#broker.watchFleet(this.#listener)
  }

  async stop (): Promise<void> {
    await this.#broker.unwatchFleet(this.#listener)
  }

  async disconnectUser (user: string, options: DisconnectOptions = {}): Promise<UserActionResult> {
    const code = options.code ?? CloseCode.POLICY_VIOLATION
    if (!isSendableCloseCode(code)) throw new FRT_ERR_INVALID_OPTION('code', `expected 1000, 1008, 1011 or 3000–4999, got ${String(code)}`)
    const message: FleetMessage = { a: 'disconnect', u: userId(user), c: code, r: options.reason ?? DEFAULT_REASON }
    return await this.#broadcast('disconnect', JSON.stringify(message))
  }

  async sendToUser (route: CompiledRoute, user: string, event: string, data: unknown): Promise<UserActionResult> {
    const compiled = route.events.get(event)
    if (compiled === undefined) throw new FRT_ERR_UNKNOWN_EVENT(event, route.url)
    const message: FleetMessage = { a: 'send', u: userId(user), route: route.url, e: event, d: compiled.serialize(data) }
    return await this.#broadcast('send', JSON.stringify(message))
  }

  async #broadcast (action: 'disconnect' | 'send', message: string): Promise<UserActionResult> {
    const nodes = await this.#broker.broadcast(message)
    this.#metrics.userAction(action)
    return { nodes }
  }

  #heard (payload: string): void {
    let message: FleetMessage
    try {
      message = JSON.parse(payload) as FleetMessage
    } catch {
      this.#log.warn({ bytes: payload.length }, 'ws.fleet_message_invalid')
      return
    }
    const connections = this.#connectionsOf(message.u)
    if (connections === undefined) return
    let reached = 0
    if (message.a === 'disconnect') {
      // Copied first: closing removes each from the set being read.
      for (const connection of [...connections]) {
        connection.close(message.c, message.r)
        reached++
      }
    } else if (message.a === 'send') {
      let text: SharedText | undefined
      for (const connection of connections) {
        if (connection.route !== message.route) continue
        text ??= new SharedText(eventFrame(message.e, message.d))
        connection.writeShared(text, message.e)
        reached++
      }
    }
    if (reached > 0) this.#metrics.userActionApplied(message.a, reached)
  }
}

function userId (user: string): string {
  if (typeof user !== 'string' || user.length === 0) throw new FRT_ERR_INVALID_OPTION('user', `expected an identity id, got ${JSON.stringify(user)}`)
  return user
}

/** What `ws` lets a server send, less what means something else here (1012 is the drain's). */
function isSendableCloseCode (code: number): boolean {
  return Number.isInteger(code) && (code === CloseCode.NORMAL || code === CloseCode.POLICY_VIOLATION || code === CloseCode.INTERNAL_ERROR || (code >= 3000 && code <= 4999))
}
