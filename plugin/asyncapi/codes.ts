import { CLOSE_CODES, ErrorCode, type ProtocolErrorCode } from '../protocol/codes.js'

/** What each `$error` code means, as PROTOCOL.md tells it; a record, so a new code cannot be left out. */
export const ERROR_CODE_MEANINGS: Record<ProtocolErrorCode, string> = {
  [ErrorCode.INVALID_JSON]: 'the frame is not valid JSON',
  [ErrorCode.INVALID_MESSAGE]: 'not an object; `type` missing or not a string; `id` or `traceparent` malformed; nesting too deep; a `__proto__` or `constructor.prototype` key',
  [ErrorCode.UNKNOWN_TYPE]: 'the route declares no such message type',
  [ErrorCode.VALIDATION_FAILED]: '`data` fails the type\'s schema; `details` lists up to 10 `{ path, message }` entries',
  [ErrorCode.RATE_LIMITED]: 'the message budget of the connection, or of its client (identity or address) on this node, is spent; `retryAfterMs` says when to retry',
  [ErrorCode.FORBIDDEN]: 'the route refused this topic or message, or the connection holds too many topics',
  [ErrorCode.BINARY_NOT_SUPPORTED]: 'a binary frame on a text-only route',
  [ErrorCode.HANDLER_ERROR]: 'the handler failed; the message is generic',
  [ErrorCode.UNAVAILABLE]: 'a dependency the message needs (the broker) is unreachable; `retryAfterMs` is set',
  [ErrorCode.IN_PROGRESS]: 'a message with this idempotency key is still being handled (here or on another node); `retryAfterMs` says when to ask again',
  [ErrorCode.INVALID_CREDENTIALS]: '`$refresh` refused the token (invalid, expired, or of another identity); the connection keeps its old expiry'
}

export interface CloseCodeMeaning {
  meaning: string
  /** What a client should do, following PROTOCOL.md's table. */
  reconnect: string
}

/** The close codes a client may meet, with what they mean and whether to reconnect: the close-code table's. */
export const CLOSE_CODE_MEANINGS: Record<number, CloseCodeMeaning> = Object.fromEntries(
  Object.values(CLOSE_CODES).map(({ code, meaning, reconnect }) => [code, { meaning, reconnect }])
)
