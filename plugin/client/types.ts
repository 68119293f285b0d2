import type { Static, TSchema } from 'typebox'

/*
 * The client's types, read from a server route's type (`typeof route`, imported with
 * `import type`): message names, their data and replies, and event payloads.
 */

/** Any declared route: what the server's `RealtimeRoute` carries at the type level. */
export interface RouteShape {
  readonly types: { events: Record<string, TSchema>, messages: Record<string, { data?: TSchema, reply?: TSchema }> }
}

/** No route type given: any message, any payload. */
export interface AnyRoute extends RouteShape {
  readonly types: { events: Record<string, TSchema>, messages: Record<string, { data: TSchema, reply: TSchema }> }
}

type Messages<R extends RouteShape> = R['types']['messages']
type Events<R extends RouteShape> = R['types']['events']

/** The route's own message types (protocol commands such as `$subscribe` are the client's). */
export type MessageType<R extends RouteShape> = keyof Messages<R> & string

/** What `data` a message type takes; `undefined` when it declares none. */
export type MessageData<R extends RouteShape, K extends MessageType<R>> =
  Messages<R>[K] extends { data: infer D extends TSchema } ? Static<D> : undefined

/** What a message type's `$reply` carries; `undefined` when it declares no reply. */
export type MessageReply<R extends RouteShape, K extends MessageType<R>> =
  Messages<R>[K] extends { reply: infer D extends TSchema } ? Static<D> : undefined

export type EventName<R extends RouteShape> = keyof Events<R> & string

/** What a member of the route's presence shows of itself: its `presence.info` schema's type. */
export type PresenceInfo<R extends RouteShape> = R['types'] extends { presence: infer P extends TSchema } ? Static<P> : unknown

/** A server event as a subscription handler receives it. */
export type TopicEvent<R extends RouteShape> = {
  [K in EventName<R>]: { event: K, data: Static<Events<R>[K]>, topic: string, offset: string }
}[EventName<R>]

/** Message types whose `data` may be left out. */
export type OptionalDataArgs<R extends RouteShape, K extends MessageType<R>> =
  MessageData<R, K> extends undefined ? [data?: undefined] : [data: MessageData<R, K>]
