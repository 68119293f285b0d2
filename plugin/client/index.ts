/*
 * `fastify-realtime/client`: runs in browsers and in Node; imports nothing from Node, `ws` or
 * the server (the route type is a type-only import).
 */
export { RealtimeClient, type ClientOptions, type ClientState, type SubscribeOptions, type WebSocketConstructor, type WebSocketLike } from './client.js'
export { ClientErrorCode, RealtimeClientError, type ClientErrorCodeName } from './errors.js'
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from '../protocol/backoff.js'
export { closePolicy, type ClosePolicy } from '../protocol/close-policy.js'
export type { AnyRoute, EventName, MessageData, MessageReply, MessageType, PresenceInfo, RouteShape, TopicEvent } from './types.js'
export type { PresenceMember, PresenceReply, PresenceUpdate } from './presence.js'
