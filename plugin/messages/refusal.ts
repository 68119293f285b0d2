import type { Span } from '@opentelemetry/api'
import type { Connection } from '../connection/connection.js'
import { CloseCode, ErrorCode } from '../protocol/codes.js'
import type { MessageId, RealtimeErrorOptions } from '../protocol/frames.js'
import { endSpanWithError } from '../telemetry/tracing.js'

/** The `type` label of frames whose type is not declared: never a value the client chose. */
export const UNKNOWN_TYPE_LABEL = 'unknown'

/** Answers a refused frame: error frame, metric and log line, in one place. */
export function refuse (
  connection: Connection,
  id: MessageId | undefined,
  type: string,
  code: string,
  message: string,
  event: string,
  options?: RealtimeErrorOptions,
  span?: Span
): void {
  if (span !== undefined) endSpanWithError(span, code)
  connection.served.metrics.messageError(type, code)
  connection.log.info({ type, code, details: options?.details }, event)
  connection.sendError(id, code, message, options)
}

/**
 * Spends the frame's budget (see `MessageBudget`). A refusal answers `RATE_LIMITED` with
 * `retryAfterMs`; sustained refusals close the connection with 1008 instead. False when refused.
 */
export function withinBudget (connection: Connection, id: MessageId | undefined, type: string, typeRate: number | undefined, span?: Span): boolean {
  const budget = connection.budget
  const retryAfterMs = budget.take(type, typeRate)
  if (retryAfterMs === 0) return true
  connection.served.metrics.rateLimited(budget.refusedBy)
  if (budget.recordRefusal()) {
    if (span !== undefined) endSpanWithError(span, ErrorCode.RATE_LIMITED)
    connection.log.warn('ws.rate_limit_abuse')
    connection.close(CloseCode.POLICY_VIOLATION, 'message rate limit repeatedly exceeded')
    return false
  }
  refuse(connection, id, type, ErrorCode.RATE_LIMITED, 'message budget exceeded', 'ws.rate_limited', { retryAfterMs }, span)
  return false
}
