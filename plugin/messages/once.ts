import type { Broker } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { ErrorCode } from '../protocol/codes.js'
import type { RealtimeErrorOptions } from '../protocol/frames.js'
import type { MessageId } from '../protocol/frames.js'

export interface OnceSettings {
  broker: Broker
  /** How long a run holds its key without renewing it; renewed every third of it. */
  leaseMs: number
  /** How long an answer is kept for retries. */
  ttlMs: number
}

/** What a run of a keyed message left for its retries: its reply's JSON, or its error. */
export type StoredAnswer = { r: string | null } | { e: { code: string, message: string } & RealtimeErrorOptions }

/**
 * The key a run is stored under: per route, type and identity, so one user's key never meets
 * another's answer. An anonymous connection's keys are its own: nothing identifies it on the next.
 */
export function onceKey (connection: Connection, type: string, idempotencyKey: string): string {
  const owner = connection.identity === undefined ? `c:${connection.id}` : `u:${String(connection.identity.id)}`
  return `${connection.route}\n${type}\n${owner}\n${idempotencyKey}`.replace(/[{}]/g, '_')
}

/** Sends what a finished run answered, to its retry. */
export function replayAnswer (connection: Connection, id: MessageId | undefined, stored: string): string {
  const answer = JSON.parse(stored) as StoredAnswer
  if ('r' in answer) {
    if (id !== undefined) connection.sendReply(id, answer.r ?? undefined)
    return 'ok'
  }
  connection.sendError(id, answer.e.code, answer.e.message, { details: answer.e.details, retryAfterMs: answer.e.retryAfterMs })
  return answer.e.code
}

/** The answer to a retry that came while the first run still runs. */
export function answerInProgress (connection: Connection, id: MessageId | undefined, settings: OnceSettings): string {
  connection.sendError(id, ErrorCode.IN_PROGRESS, 'this message is still being handled', { retryAfterMs: Math.ceil(settings.leaseMs / 3) })
  return ErrorCode.IN_PROGRESS
}

/** Keeps a claim while its run lasts. */
export function renewWhileRunning (settings: OnceSettings, key: string, token: string): () => void {
  const timer = setInterval(() => {
    settings.broker.renewOnce(key, token, settings.leaseMs).catch(() => {})
  }, Math.max(10, Math.floor(settings.leaseMs / 3)))
  timer.unref()
  return () => clearInterval(timer)
}
