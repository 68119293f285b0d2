import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Static, TSchema } from 'typebox'
import type { TopicPosition } from './broker/broker.js'
import type { MessageId } from './protocol/frames.js'

/** The events a route may push, by name. */
export type EventSchemas = Record<string, TSchema>

/** The schemas of one client message type: its `data` and, when it answers, its reply. */
export interface MessageSchemas {
  data?: TSchema
  reply?: TSchema
  /** This type's own budget per connection, instead of the route's. */
  messagesPerSecond?: number
}

/** Who is connected, as `authenticate` established it. */
export interface Identity {
  /** The subject, e.g. a user id. */
  id: string
  /** Epoch milliseconds after which the connection is closed with 4003. */
  expiresAt?: number
  [claim: string]: unknown
}

/** The type a handler receives as `data`. */
export type MessageData<S extends MessageSchemas> = S extends { data: infer D extends TSchema } ? Static<D> : undefined

/** The type a handler must return: the reply's static type, or nothing without a reply schema. */
export type MessageReply<S extends MessageSchemas> = S extends { reply: infer R extends TSchema } ? Static<R> : void

type EventName<E extends EventSchemas> = keyof E & string

/** One open WebSocket connection as handlers see it. */
export interface RealtimeConnection<E extends EventSchemas = EventSchemas> {
  /** Unique, unguessable id, also sent to the client in `$welcome`. */
  readonly id: string
  /** The route's URL as declared, e.g. `/ws`. */
  readonly route: string
  /** The HTTP request that was upgraded. */
  readonly request: FastifyRequest
  /** The request's logger with `connectionId` and `route` bound. */
  readonly log: FastifyBaseLogger
  /** Who connected, when the plugin has an `authenticate` option. */
  readonly identity: Identity | undefined
  /** Topics this connection is subscribed to. */
  readonly topics: ReadonlySet<string>
  /** Sends a declared event to this connection only, serialized by its schema. */
  send: <K extends EventName<E>>(event: K, data: Static<E[K]>) => void
  /** Closes the connection; `reason` is cut to the 123 bytes a close frame allows. */
  close: (code?: number, reason?: string) => void
}

/** What a message handler gets besides `data`. */
export interface MessageContext<E extends EventSchemas = EventSchemas> {
  /** The message's `id`, when the client asked for an answer. */
  readonly id: MessageId | undefined
  /** The message type being handled. */
  readonly type: string
  readonly connection: RealtimeConnection<E>
  readonly log: FastifyBaseLogger
  /** Publishes a declared event on a topic: serialized once, delivered to every subscriber. */
  publish: <K extends EventName<E>>(topic: string, event: K, data: Static<E[K]>) => Promise<TopicPosition>
}

/** Handles one message type; throw a `RealtimeError` to answer with a specific error code. */
export type MessageHandler<S extends MessageSchemas, E extends EventSchemas> =
  (data: MessageData<S>, context: MessageContext<E>) => MessageReply<S> | Promise<MessageReply<S>>

/** Handles a binary frame on a route that accepts them. */
export type BinaryHandler<E extends EventSchemas> = (data: Buffer, connection: RealtimeConnection<E>) => void | Promise<void>

/** Decides whether a connection may subscribe to a topic. */
export type SubscribeAuthorizer<E extends EventSchemas> = (topic: string, connection: RealtimeConnection<E>) => boolean | Promise<boolean>

/** Decides, after validation and before the handler, whether a connection may send this message. */
export type MessageAuthorizer<E extends EventSchemas> = (type: string, data: unknown, connection: RealtimeConnection<E>) => boolean | Promise<boolean>

/**
 * Presence on a route's topics: who is subscribed, across every node. A connection subscribing
 * to a topic that `authorize` accepts for it is a member while subscribed, and may read the
 * topic's presence (`$presence`, `$subscribe` with `presence: true`).
 */
export interface PresenceOptions<E extends EventSchemas = EventSchemas, I extends TSchema = TSchema> {
  /** What a member shows of itself; serialized through this schema, so nothing undeclared leaves. */
  info: I
  /** Builds a member's info when it joins a topic, typically from `connection.identity`. */
  member: (connection: RealtimeConnection<E>, topic: string) => Static<I> | Promise<Static<I>>
  /** Whether `topic` has presence for this connection; without it, reading is `FORBIDDEN`. */
  authorize: (topic: string, connection: RealtimeConnection<E>) => boolean | Promise<boolean>
}

/** Options of `app.wsRoute(url, options)`. */
export interface RealtimeRouteOptions<E extends EventSchemas = EventSchemas, P extends TSchema = TSchema> {
  /** Events the server may push on this route, by name. */
  events?: E
  /** Which topics a connection may `$subscribe` to; without it every topic is `FORBIDDEN`. */
  authorizeSubscribe?: SubscribeAuthorizer<E>
  /** Per-message authorization: a `false` answers `FORBIDDEN` without running the handler. */
  authorizeMessage?: MessageAuthorizer<E>
  /**
   * Binary frames: `'error'` answers `BINARY_NOT_SUPPORTED` (default), `'close'` closes with
   * 1003, a function receives them.
   */
  binary?: 'error' | 'close' | BinaryHandler<E>
  /** Overrides the plugin's per-connection message budget for this route. */
  messagesPerSecond?: number
  /** Presence on this route's topics; none without it. */
  presence?: PresenceOptions<E, P>
  /**
   * Topics each connection is subscribed to when it opens, chosen by the server (a personal
   * `user:<id>`, a team's): listed in `$welcome`, resumed by offset like the client's own, and
   * never refused by `authorizeSubscribe` or left by `$unsubscribe`.
   */
  subscriptions?: (connection: RealtimeConnection<E>) => string[] | Promise<string[]>
}
