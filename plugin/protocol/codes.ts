/*
 * The codes of PROTOCOL.md as data: `$error` codes, and the one table of close codes from which
 * the client's reconnect policy, the AsyncAPI document, the metric labels and the reading of
 * ws's own closes are derived. `test/plugin/codes.test.ts` ties PROTOCOL.md to this table.
 */

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
  UNAVAILABLE: 'UNAVAILABLE',
  INVALID_CREDENTIALS: 'INVALID_CREDENTIALS',
  IN_PROGRESS: 'IN_PROGRESS'
} as const)

export type ProtocolErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

/** Error codes, the protocol's and applications' alike: upper snake case. */
export const APPLICATION_CODE = /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/

/**
 * What a client does after a close:
 * - `reconnect`: after a backoff delay, then resume its subscriptions;
 * - `reconnect-later`: the same, with a longer delay (the server asked to be left alone);
 * - `refresh-credentials`: fetch fresh credentials (`getToken`), then reconnect;
 * - `stop`: do not reconnect: retrying would fail the same way, or the close was meant;
 * - `stop-unless-asked`: stop, unless the application asked to reconnect after idle closes.
 */
export type CloseAdvice = 'reconnect' | 'reconnect-later' | 'refresh-credentials' | 'stop' | 'stop-unless-asked'

/** Who sends a close code: this server, ws on its behalf, either side, or nobody on this server. */
export type CloseSender = 'server' | 'ws' | 'either side' | 'proxies' | 'never sent'

export interface CloseCodeEntry {
  readonly code: number
  readonly sentBy: CloseSender
  /** When it is sent, as PROTOCOL.md's table says it. */
  readonly meaning: string
  readonly advice: CloseAdvice
  /** What a client does, in words: PROTOCOL.md's "client reconnects?" column. */
  readonly reconnect: string
}

/** Every close code a client of this server may meet. */
export const CLOSE_CODES = Object.freeze({
  NORMAL: { code: 1000, sentBy: 'either side', advice: 'stop', reconnect: 'no', meaning: 'normal close by either side' },
  GOING_AWAY: { code: 1001, sentBy: 'proxies', advice: 'reconnect', reconnect: 'yes, with backoff', meaning: 'going away for good (not sent by this server; a client may meet it from proxies)' },
  PROTOCOL_ERROR: { code: 1002, sentBy: 'ws', advice: 'stop', reconnect: 'no', meaning: 'protocol error: bad opcode, unmasked client frame, reserved bits' },
  UNSUPPORTED_DATA: { code: 1003, sentBy: 'server', advice: 'stop', reconnect: 'no', meaning: 'binary frame on a route with `binary: \'close\'`' },
  ABNORMAL_CLOSURE: { code: 1006, sentBy: 'never sent', advice: 'reconnect', reconnect: 'yes', meaning: 'no close frame: the server terminated a peer that missed a heartbeat pong, a straggler at the end of a drain, a slow consumer that read nothing, or a peer flooding pings; browsers also report a refused handshake so' },
  INVALID_PAYLOAD: { code: 1007, sentBy: 'ws', advice: 'stop', reconnect: 'no', meaning: 'a text frame that is not valid UTF-8' },
  POLICY_VIOLATION: { code: 1008, sentBy: 'server', advice: 'stop', reconnect: 'no (until the user acts)', meaning: 'policy: sustained rate-limit abuse; a message in more than `maxFragments` fragments (sent by `ws`); a fragmented message not completed within `incompleteMessageTimeoutMs`; the app disconnected the user (`disconnectUser`, by default)' },
  MESSAGE_TOO_BIG: { code: 1009, sentBy: 'ws', advice: 'stop', reconnect: 'no', meaning: 'frame over `maxPayload`' },
  INTERNAL_ERROR: { code: 1011, sentBy: 'server', advice: 'reconnect', reconnect: 'yes, with backoff', meaning: 'unexpected server error (the process keeps serving others)' },
  SERVICE_RESTART: { code: 1012, sentBy: 'server', advice: 'reconnect', reconnect: 'yes, after a jittered delay, and resumes', meaning: 'service restart: a drain (SIGTERM), sent at a random moment in the first half of `drainMs`' },
  TRY_AGAIN_LATER: { code: 1013, sentBy: 'never sent', advice: 'reconnect-later', reconnect: 'yes, with a longer backoff', meaning: 'try again later (not sent by this server: a full node refuses the upgrade with 503)' },
  IDLE_TIMEOUT: { code: 4000, sentBy: 'server', advice: 'stop-unless-asked', reconnect: 'only when the app needs it', meaning: 'idle timeout: no complete message within `idleTimeoutMs` (pongs and unfinished fragments do not count)' },
  SLOW_CONSUMER: { code: 4001, sentBy: 'server', advice: 'reconnect', reconnect: 'yes, and resumes', meaning: 'slow consumer: unsent bytes over `maxBufferedBytes`; terminated if still unread after a second' },
  HEARTBEAT_TIMEOUT: { code: 4002, sentBy: 'proxies', advice: 'reconnect', reconnect: 'yes', meaning: 'heartbeat timeout (reserved for proxies; a dead peer reads nothing, so this server terminates)' },
  CREDENTIALS_EXPIRED: { code: 4003, sentBy: 'server', advice: 'refresh-credentials', reconnect: 'yes, after refreshing them', meaning: 'credentials expired during the session (`identity.expiresAt`)' }
} as const satisfies Record<string, CloseCodeEntry>)

export type CloseCodeName = keyof typeof CLOSE_CODES

/** Close codes by name, as numbers: `CloseCode.SERVICE_RESTART` is 1012. */
export const CloseCode = Object.freeze(Object.fromEntries(
  Object.entries(CLOSE_CODES).map(([name, entry]) => [name, entry.code])
)) as { readonly [N in CloseCodeName]: typeof CLOSE_CODES[N]['code'] }

const ENTRY_BY_CODE: ReadonlyMap<number, CloseCodeEntry> = new Map(Object.values(CLOSE_CODES).map((entry) => [entry.code, entry]))

/** The table's entry for a close code, or undefined for one it does not list. */
export function closeCodeEntry (code: number): CloseCodeEntry | undefined {
  return ENTRY_BY_CODE.get(code)
}

/** Application codes 4000–4499 mean "reconnect", 4500–4999 "do not"; a client follows the range of a code the table does not list. */
export function adviceForUnlistedCode (code: number): CloseAdvice {
  return code >= 4500 && code <= 4999 ? 'stop' : 'reconnect'
}
