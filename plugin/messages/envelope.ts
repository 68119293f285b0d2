import secureJson from 'secure-json-parse'
import { exceedsNestingDepth } from './json-depth.js'
import { ErrorCode } from '../protocol/codes.js'
import { IDEMPOTENCY_KEY, isValidMessageId, TRACEPARENT, type MessageId } from '../protocol/frames.js'

/** A client frame whose envelope is well formed; `data` is not validated yet. */
export interface Envelope {
  type: string
  id: MessageId | undefined
  data: unknown
  traceparent: string | undefined
  /** Makes the message run once however often it is sent: a retry gets the first run's answer. */
  idempotencyKey: string | undefined
}

/** Why a frame was refused before its type was looked up, with the id when it could be read. */
export interface EnvelopeFailure {
  code: typeof ErrorCode.INVALID_JSON | typeof ErrorCode.INVALID_MESSAGE
  message: string
  id: MessageId | undefined
}

export type EnvelopeResult = { ok: true, envelope: Envelope } | { ok: false, failure: EnvelopeFailure }

/**
 * Only frames that could hold a forbidden key are scanned for it: the common frame pays nothing.
 * A key spelled with JSON escapes (`"\u005f_proto__"`) needs a `\u` escape, since no other JSON
 * escape yields a letter or `_`, so every way of writing the keys contains one of these.
 */
const FORBIDDEN_KEY_HINT = /__proto__|constructor|\\u/

/**
 * Parses one text frame into an envelope. Depth is capped before parsing; `__proto__` and
 * `constructor.prototype` keys are refused (as Fastify refuses them in bodies) so that no
 * handler can pollute a prototype by merging `data` into another object.
 */
export function parseEnvelope (text: string, maxNestingDepth: number): EnvelopeResult {
  if (exceedsNestingDepth(text, maxNestingDepth)) {
    return fail(ErrorCode.INVALID_MESSAGE, `nesting is deeper than ${maxNestingDepth} levels`, undefined)
  }
  let value: unknown
  try {
    // Plain JSON.parse makes `__proto__` an own property, harmless while only `id` is read below.
    value = JSON.parse(text)
  } catch {
    return fail(ErrorCode.INVALID_JSON, 'frame is not valid JSON', undefined)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return fail(ErrorCode.INVALID_MESSAGE, 'frame must be a JSON object', undefined)
  }
  const frame = value as Record<string, unknown>
  const { id, type, traceparent, idempotencyKey } = frame
  if (id !== undefined && !isValidMessageId(id)) {
    return fail(ErrorCode.INVALID_MESSAGE, 'id must be a string of 1-64 characters or a safe integer', undefined)
  }
  if (FORBIDDEN_KEY_HINT.test(text)) {
    try {
      secureJson.scan(value, { protoAction: 'error', constructorAction: 'error' })
    } catch {
      return fail(ErrorCode.INVALID_MESSAGE, 'frame contains a forbidden key (__proto__ or constructor.prototype)', id)
    }
  }
  if (typeof type !== 'string' || type.length === 0) {
    return fail(ErrorCode.INVALID_MESSAGE, 'type must be a non-empty string', id)
  }
  if (traceparent !== undefined && (typeof traceparent !== 'string' || !TRACEPARENT.test(traceparent))) {
    return fail(ErrorCode.INVALID_MESSAGE, 'traceparent must be a W3C trace context header value', id)
  }
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || !IDEMPOTENCY_KEY.test(idempotencyKey))) {
    return fail(ErrorCode.INVALID_MESSAGE, 'idempotencyKey must be 1-64 characters of A-Z a-z 0-9 _ - . :', id)
  }
  return { ok: true, envelope: { type, id, data: frame.data, traceparent, idempotencyKey } }
}

function fail (code: EnvelopeFailure['code'], message: string, id: MessageId | undefined): EnvelopeResult {
  return { ok: false, failure: { code, message, id } }
}
