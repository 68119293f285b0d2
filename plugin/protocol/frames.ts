/*
 * The frames of PROTOCOL.md as code: the subprotocol, the names and ids a frame may carry, and
 * the builders of every server frame. Anything the server puts on the wire is shaped here.
 */

/** The only protocol version this server speaks (`Sec-WebSocket-Protocol`). */
export const SUBPROTOCOL = 'realtime.v1'

/** Prefix of `Sec-WebSocket-Protocol` entries that carry a credential rather than a version. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.'

/** A W3C `traceparent` value: version, trace id, parent id and flags, each captured. */
export const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** Extra fields an error frame may carry. */
export interface RealtimeErrorOptions {
  /** Machine-readable specifics, e.g. validation paths. Never raw client input. */
  details?: unknown
  /** When the client may retry, for `RATE_LIMITED` and `UNAVAILABLE`. */
  retryAfterMs?: number
}

/** A message id as the protocol allows it: a string of 1–64 chars or a safe integer. */
export type MessageId = string | number

export function isValidMessageId (id: unknown): id is MessageId {
  if (typeof id === 'string') return id.length > 0 && id.length <= 64
  return Number.isSafeInteger(id)
}

/** Longest topic name, in characters. */
export const MAX_TOPIC_LENGTH = 256

/** Names of declared message types and events: safe to embed in JSON without escaping. */
export const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/

export function welcomeFrame (data: {
  connectionId: string
  heartbeatMs: number
  limits: { maxPayload: number, messagesPerSecond: number }
}): string {
  return JSON.stringify({ type: '$welcome', data })
}

/** `body` is already-serialized JSON, or undefined for a reply without data. */
export function replyFrame (id: MessageId, body: string | undefined): string {
  const idJson = typeof id === 'number' ? String(id) : JSON.stringify(id)
  return body === undefined
    ? '{"type":"$reply","id":' + idJson + '}'
    : '{"type":"$reply","id":' + idJson + ',"data":' + body + '}'
}

export function errorFrame (id: MessageId | undefined, code: string, message: string, options: RealtimeErrorOptions = {}): string {
  return JSON.stringify({
    type: '$error',
    id,
    error: { code, message, details: options.details, retryAfterMs: options.retryAfterMs }
  })
}

/** An event sent to one connection; `event` is a declared name, so it needs no escaping. */
export function eventFrame (event: string, body: string): string {
  return '{"type":"' + event + '","data":' + body + '}'
}

/** An event published on a topic: built once per delivery, the same bytes for every socket. */
export function topicEventFrame (event: string, topic: string, offset: string, body: string): string {
  return '{"type":"' + event + '","topic":' + JSON.stringify(topic) + ',"offset":"' + offset + '","data":' + body + '}'
}
