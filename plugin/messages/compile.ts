import type { TSchema } from 'typebox'
import { FRT_ERR_INVALID_NAME, FRT_ERR_INVALID_OPTION } from '../errors.js'
import { NAME_PATTERN } from '../protocol/frames.js'
import { compileSerializer, compileValidator, type CompiledSchema, type Serializer } from './schema.js'
import type { BinaryHandler, EventSchemas, MessageAuthorizer, MessageContext, MessageSchemas, PresenceOptions, RealtimeConnection, SubscribeAuthorizer } from '../types.js'

/** A message type ready to dispatch: schemas compiled once, when it was declared. */
export interface CompiledMessage {
  /** As declared, for the AsyncAPI document. */
  schemas: MessageSchemas
  validator: CompiledSchema | undefined
  serializeReply: Serializer | undefined
  /** Its route's types erased: `data` is `never`, so only the dispatcher, which checked it against `schemas.data`, passes it (with a cast). */
  handler: (data: never, context: MessageContext) => unknown
  /** This type's own per-connection budget, when it overrides the route's. */
  messagesPerSecond: number | undefined
}

export interface CompiledEvent {
  /** As declared, for the AsyncAPI document. */
  schema: TSchema
  serialize: Serializer
}

/** What was declared of one route, compiled: data only, no connections or metrics (those are the instance's). */
export interface CompiledRoute {
  url: string
  messages: Map<string, CompiledMessage>
  events: Map<string, CompiledEvent>
  authorizeSubscribe: SubscribeAuthorizer<EventSchemas> | undefined
  authorizeMessage: MessageAuthorizer<EventSchemas> | undefined
  binary: 'error' | 'close' | BinaryHandler<EventSchemas>
  messagesPerSecond: number
  presence: CompiledPresence | undefined
  subscriptions: ((connection: RealtimeConnection) => string[] | Promise<string[]>) | undefined
}

/** A route's presence declaration, its info schema compiled. */
export interface CompiledPresence {
  /** As declared, for the AsyncAPI document. */
  info: TSchema
  /** `member`'s value is checked before it is serialized: a value that does not fit fails its `$subscribe`. */
  validator: CompiledSchema
  serialize: Serializer
  member: PresenceOptions['member']
  authorize: PresenceOptions['authorize']
}

export function compilePresence (presence: PresenceOptions | undefined): CompiledPresence | undefined {
  if (presence === undefined) return undefined
  if (typeof presence.member !== 'function' || typeof presence.authorize !== 'function' || typeof presence.info !== 'object' || presence.info === null) {
    throw new FRT_ERR_INVALID_OPTION('presence', 'expected { info: <TypeBox schema>, member: function, authorize: function }')
  }
  return { info: presence.info, validator: compileValidator(presence.info), serialize: compileSerializer(presence.info), member: presence.member, authorize: presence.authorize }
}

export function compileMessage (schemas: MessageSchemas, handler: CompiledMessage['handler']): CompiledMessage {
  return {
    schemas,
    validator: schemas.data === undefined ? undefined : compileValidator(schemas.data),
    serializeReply: schemas.reply === undefined ? undefined : compileSerializer(schemas.reply),
    handler,
    messagesPerSecond: schemas.messagesPerSecond
  }
}

export function compileEvents (events: Record<string, TSchema>): Map<string, CompiledEvent> {
  const compiled = new Map<string, CompiledEvent>()
  for (const [name, schema] of Object.entries(events)) {
    assertName('event', name)
    compiled.set(name, { schema, serialize: compileSerializer(schema) })
  }
  return compiled
}

export function assertName (kind: 'event' | 'message type', name: string): void {
  if (!NAME_PATTERN.test(name)) throw new FRT_ERR_INVALID_NAME(kind, name)
}
