import { FRT_ERR_INVALID_CODE } from '../errors.js'
import { APPLICATION_CODE } from '../protocol/codes.js'
import type { RealtimeErrorOptions } from '../protocol/frames.js'

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
      throw new FRT_ERR_INVALID_CODE(JSON.stringify(code))
    }
    super(message)
    this.name = 'RealtimeError'
    this.code = code
    this.details = options.details
    this.retryAfterMs = options.retryAfterMs
  }
}

/**
 * Thrown by work for a message whose connection closed before it could be answered (a
 * `$subscribe` still being set up, say). Not a failure: the message ends with the outcome
 * `abandoned`, a debug line and no error metric.
 */
export class ConnectionGoneError extends Error {
  constructor (message = 'the connection closed while its message was handled') {
    super(message)
    this.name = 'ConnectionGoneError'
  }
}
