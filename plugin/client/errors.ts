/** Codes of the errors the client raises itself; a server's `$error` keeps the server's code. */
export const ClientErrorCode = Object.freeze({
  /** The client was closed (`close()`, or a close code it does not reconnect after). */
  CLOSED: 'CLOSED',
  /** No answer within the request's timeout. */
  TIMEOUT: 'TIMEOUT',
  /** Not connected, and the queue of messages waiting for the connection is full. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** The connection dropped after the request was sent: the server may or may not have handled it. */
  DISCONNECTED: 'DISCONNECTED',
  /** No `WebSocket` class: none was passed and the runtime has no global one. */
  NO_WEBSOCKET: 'NO_WEBSOCKET',
  /** An `$error` frame without a code. */
  UNKNOWN: 'UNKNOWN'
} as const)

export type ClientErrorCodeName = typeof ClientErrorCode[keyof typeof ClientErrorCode]

/**
 * A failed request or subscription: `code` is one of `ClientErrorCode`, or the code of the
 * server's `$error` (`FORBIDDEN`, `VALIDATION_FAILED`, an application's own…).
 */
export class RealtimeClientError extends Error {
  constructor (
    readonly code: ClientErrorCodeName | (string & {}),
    message: string,
    readonly details?: unknown,
    readonly retryAfterMs?: number
  ) {
    super(message)
    this.name = 'RealtimeClientError'
  }
}
