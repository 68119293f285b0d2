/**
 * The JSON Schemas of realtime.v1 frames as they travel: a declared `data`, reply or event
 * schema wrapped in the envelope PROTOCOL.md gives it.
 */
import type { TSchema } from 'typebox'
import { OFFSET_PATTERN } from '../protocol/offsets.js'
import { APPLICATION_CODE } from '../protocol/codes.js'
import { IDEMPOTENCY_KEY, PRESENCE_DIFF_TYPE, TRACEPARENT } from '../protocol/frames.js'

export type JsonSchema = Record<string, unknown>

/** A TypeBox schema as plain JSON Schema: TypeBox's own markers are symbols or non-enumerable, and fall away. */
export function toJsonSchema (schema: TSchema): JsonSchema {
  return JSON.parse(JSON.stringify(schema)) as JsonSchema
}

const messageId = (): JsonSchema => ({
  description: 'Chosen by the client; the answer carries the same id.',
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64 },
    { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER }
  ]
})

const traceparent = (): JsonSchema => ({
  type: 'string',
  description: 'W3C trace context; the span handling the message becomes its child.',
  pattern: TRACEPARENT.source
})

function envelope (type: string, fields: Record<string, JsonSchema>, required: string[]): JsonSchema {
  return {
    type: 'object',
    required: ['type', ...required],
    properties: { type: { type: 'string', const: type }, ...fields }
  }
}

/** A client message of `type`; `data` is required when the type declares a schema for it. */
export function clientMessage (type: string, data: JsonSchema | undefined): JsonSchema {
  return envelope(type, {
    id: messageId(),
    ...(data === undefined ? {} : { data }),
    traceparent: traceparent(),
    idempotencyKey: { type: 'string', pattern: IDEMPOTENCY_KEY.source, description: 'Runs the message once however often it is sent: a retry gets the first run\'s answer, or `IN_PROGRESS` while it runs.' }
  }, data === undefined ? [] : ['data'])
}

/** The `$reply` to a message that carried an `id`; without a reply schema it has no `data`. */
export function replyMessage (data: JsonSchema | undefined): JsonSchema {
  return envelope('$reply', { id: messageId(), ...(data === undefined ? {} : { data }) }, data === undefined ? ['id'] : ['id', 'data'])
}

/** An event pushed by the server; `topic` and `offset` are there when it came through a topic. */
export function eventMessage (name: string, data: JsonSchema): JsonSchema {
  return envelope(name, {
    data,
    topic: { type: 'string', description: 'The topic it was published on, when it came through one.' },
    offset: { type: 'string', pattern: OFFSET_PATTERN, description: 'Its position in the topic; resume from it with `$subscribe` `since`.' }
  }, ['data'])
}

export function errorMessage (codes: string[]): JsonSchema {
  return envelope('$error', {
    id: { ...messageId(), description: 'The id of the message refused, when it had one.' },
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: {
          type: 'string',
          pattern: APPLICATION_CODE.source,
          description: `One of ${codes.join(', ')}, or a code of the application's own.`
        },
        message: { type: 'string', description: 'For people; never holds secrets or internals.' },
        details: { description: 'Machine-readable specifics, e.g. validation paths.' },
        retryAfterMs: { type: 'integer', minimum: 0, description: 'When to retry, for RATE_LIMITED and UNAVAILABLE.' }
      }
    }
  }, ['error'])
}

export function welcomeMessage (): JsonSchema {
  return envelope('$welcome', {
    data: {
      type: 'object',
      required: ['connectionId', 'heartbeatMs', 'limits'],
      properties: {
        connectionId: { type: 'string' },
        user: { type: 'string', description: 'The identity\'s id, when the connection has one.' },
        heartbeatMs: { type: 'integer', minimum: 0, description: 'Protocol ping interval; 0 when off.' },
        expiresAt: { type: 'integer', description: 'When the credentials expire (epoch ms), when they do: `$refresh` ahead of it, or the connection closes with 4003.' },
        subscriptions: {
          type: 'array',
          description: 'The topics the server subscribed this connection to, each where it stood: resume one with `$subscribe` `since`.',
          items: {
            type: 'object',
            required: ['topic', 'offset', 'epoch'],
            properties: { topic: { type: 'string' }, offset: { type: 'string', pattern: OFFSET_PATTERN }, epoch: { type: 'string' } }
          }
        },
        limits: {
          type: 'object',
          required: ['maxPayload', 'messagesPerSecond'],
          properties: {
            maxPayload: { type: 'integer', minimum: 1, description: 'Largest frame in bytes; larger ones close with 1009.' },
            messagesPerSecond: { type: 'number', minimum: 0, description: 'This connection\'s message budget; 0 when unlimited.' }
          }
        }
      }
    }
  }, ['data'])
}

/** `$presence.diff`: a topic's joins (with each member's `info`, as the route's schema gives it) and leaves since the last one. */
export function presenceDiffMessage (info: JsonSchema): JsonSchema {
  const entry = (withInfo: boolean): JsonSchema => ({
    type: 'object',
    required: withInfo ? ['user', 'connection', 'info'] : ['user', 'connection'],
    properties: {
      user: { type: 'string', description: 'The identity\'s id, or the connection\'s own for anonymous connections.' },
      connection: { type: 'string', description: 'The member\'s connection: a user present on several connections has an entry for each.' },
      ...(withInfo ? { info } : {})
    }
  })
  return envelope(PRESENCE_DIFF_TYPE, {
    topic: { type: 'string' },
    data: {
      type: 'object',
      required: ['joins', 'leaves'],
      properties: { joins: { type: 'array', items: entry(true) }, leaves: { type: 'array', items: entry(false) } }
    }
  }, ['topic', 'data'])
}
