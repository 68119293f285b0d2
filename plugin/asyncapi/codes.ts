import { CloseCode, ErrorCode, type ProtocolErrorCode } from '../protocol.js'

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
  [ErrorCode.UNAVAILABLE]: 'a dependency the message needs (the broker) is unreachable; `retryAfterMs` is set'
}

export interface CloseCodeMeaning {
  meaning: string
  /** What a client should do, following PROTOCOL.md's table. */
  reconnect: string
}

/** The close codes a client may meet, with what they mean and whether to reconnect. */
export const CLOSE_CODE_MEANINGS: Record<number, CloseCodeMeaning> = {
  [CloseCode.NORMAL]: { meaning: 'normal close by either side', reconnect: 'no' },
  [CloseCode.GOING_AWAY]: { meaning: 'going away (from proxies; not sent by this server)', reconnect: 'yes, with backoff' },
  [CloseCode.PROTOCOL_ERROR]: { meaning: 'protocol error: bad opcode, unmasked client frame, reserved bits', reconnect: 'no' },
  [CloseCode.UNSUPPORTED_DATA]: { meaning: 'binary frame on a route that closes on them', reconnect: 'no' },
  [CloseCode.ABNORMAL_CLOSURE]: { meaning: 'no close frame: a missed heartbeat, a straggler at the end of a drain, a slow consumer that read nothing, a peer flooding pings, or a refused handshake', reconnect: 'yes, with backoff' },
  [CloseCode.INVALID_PAYLOAD]: { meaning: 'a text frame that is not valid UTF-8', reconnect: 'no' },
  [CloseCode.POLICY_VIOLATION]: { meaning: 'sustained rate-limit abuse, too many fragments in one message, or a fragmented message not completed in time', reconnect: 'no, until the user acts' },
  [CloseCode.MESSAGE_TOO_BIG]: { meaning: 'frame over the route\'s maxPayload', reconnect: 'no' },
  [CloseCode.INTERNAL_ERROR]: { meaning: 'unexpected server error', reconnect: 'yes, with backoff' },
  [CloseCode.SERVICE_RESTART]: { meaning: 'the node is draining (restart or deploy)', reconnect: 'yes, after a jittered delay, resuming topics' },
  [CloseCode.TRY_AGAIN_LATER]: { meaning: 'try again later (not sent by this server)', reconnect: 'yes, with a longer backoff' },
  [CloseCode.IDLE_TIMEOUT]: { meaning: 'no message within the idle timeout', reconnect: 'only when the application needs it' },
  [CloseCode.SLOW_CONSUMER]: { meaning: 'slow consumer: too many unsent bytes', reconnect: 'yes, resuming topics' },
  [CloseCode.HEARTBEAT_TIMEOUT]: { meaning: 'heartbeat timeout (reserved for proxies)', reconnect: 'yes' },
  [CloseCode.CREDENTIALS_EXPIRED]: { meaning: 'credentials expired during the session', reconnect: 'yes, after refreshing them' }
}
