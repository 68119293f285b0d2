/*
 * `fastify-realtime/client`: runs in browsers and in Node; imports nothing from Node, `ws` or
 * the server (the route type is a type-only import).
 */
export { RealtimeClient, RealtimeClientError, type ClientOptions, type ClientState, type SubscribeOptions, type WebSocketConstructor, type WebSocketLike } from './client.js'
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'
export { closePolicy, type ClosePolicy } from './close-policy.js'
export type { AnyRoute, EventName, MessageData, MessageReply, MessageType, RouteShape, TopicEvent } from './types.js'
