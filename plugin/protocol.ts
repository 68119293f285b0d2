/**
 * The wire contract of PROTOCOL.md as code: subprotocol, error codes, close codes and the
 * builders of every server frame. Anything that goes on the wire is shaped here.
 */

/** The only protocol version this server speaks (`Sec-WebSocket-Protocol`). */
export const SUBPROTOCOL = 'realtime.v1'

/** Prefix of `Sec-WebSocket-Protocol` entries that carry a credential rather than a version. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.'

/** Error codes of the `$error` frame. Routes may add their own upper-snake-case codes. */
export const ErrorCode = Object.freeze({
  INVALID_JSON: 'INVALID_JSON',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  RATE_LIMITED: 'RATE_LIMITED',
  FORBIDDEN: 'FORBIDDEN',
  BINARY_NOT_SUPPORTED: 'BINARY_NOT_SUPPORTED',
  HANDLER_ERROR: 'HANDLER_ERROR',
  UNAVAILABLE: 'UNAVAILABLE'
} as const)

export type ProtocolErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

/** Close codes with their meaning; the client's reconnect policy follows these (PROTOCOL.md). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Never sent: what a side reports when the connection ended without a close frame. */
  ABNORMAL_CLOSURE: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  IDLE_TIMEOUT: 4000,
  SLOW_CONSUMER: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  CREDENTIALS_EXPIRED: 4003
} as const)

/** Error codes, the protocol's and applications' alike: upper snake case. */
export const APPLICATION_CODE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/

/** A W3C `traceparent` value: version, trace id, parent id and flags, each captured. */
export const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** Extra fields an error frame may carry. */
export interface RealtimeErrorOptions {
  /** Machine-readable specifics, e.g. validation paths. Never raw client input. */
  details?: unknown
  /** When the client may retry, for `RATE_LIMITED` and `UNAVAILABLE`. */
  retryAfterMs?: number
}

/**
 * An error a handler throws to answer the message with a specific `$error` code. The message is
 * sent to the client as is, so it must not contain secrets. Any other thrown value becomes a
 * generic `HANDLER_ERROR`.
 */
export class RealtimeError extends Error {
  readonly code: string
  readonly details: unknown
  readonly retryAfterMs: number | undefined

  constructor (code: string, message: string, options: RealtimeErrorOptions = {}) {
    if (!APPLICATION_CODE.test(code)) {
      throw new TypeError(`RealtimeError code must be UPPER_SNAKE_CASE, got ${JSON.stringify(code)}`)
    }
    super(message)
    this.name = 'RealtimeError'
    this.code = code
    this.details = options.details
    this.retryAfterMs = options.retryAfterMs
  }
}

/** A message id as the protocol allows it: a string of 1–64 chars or a safe integer. */
export type MessageId = string | number

export function isValidMessageId (id: unknown): id is MessageId {
  if (typeof id === 'string') return id.length > 0 && id.length <= 64
  return Number.isSafeInteger(id)
}

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
