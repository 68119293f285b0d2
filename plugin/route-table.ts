import type { TSchema } from 'typebox'
import type { Connection } from './connection.js'
import { FRT_ERR_INVALID_NAME } from './errors.js'
import { NAME_PATTERN } from './protocol.js'
import { compileSerializer, compileValidator, type CompiledSchema, type Serializer } from './schema.js'
import type { BinaryHandler, MessageContext, SubscribeAuthorizer } from './types.js'

/** A message type ready to dispatch: schemas compiled once, when it was declared. */
export interface CompiledMessage {
  validator: CompiledSchema | undefined
  serializeReply: Serializer | undefined
  handler: (data: any, context: MessageContext<any>) => unknown
  /** Runs after the reply was written; protocol commands use it to go live after answering. */
  afterReply?: (data: any, context: MessageContext<any>) => void
}

export interface CompiledEvent {
  serialize: Serializer
}

/** Everything the connection layer needs to know about one route. */
export interface CompiledRoute {
  url: string
  messages: Map<string, CompiledMessage>
  events: Map<string, CompiledEvent>
  authorizeSubscribe: SubscribeAuthorizer<any> | undefined
  binary: 'error' | 'close' | BinaryHandler<any>
  messagesPerSecond: number
  connections: Set<Connection>
}

export function compileMessage (
  schemas: { data?: TSchema, reply?: TSchema },
  handler: CompiledMessage['handler'],
  afterReply?: CompiledMessage['afterReply']
): CompiledMessage {
  return {
    validator: schemas.data === undefined ? undefined : compileValidator(schemas.data),
    serializeReply: schemas.reply === undefined ? undefined : compileSerializer(schemas.reply),
    handler,
    afterReply
  }
}

export function compileEvents (events: Record<string, TSchema>): Map<string, CompiledEvent> {
  const compiled = new Map<string, CompiledEvent>()
  for (const [name, schema] of Object.entries(events)) {
    assertName('event', name)
    compiled.set(name, { serialize: compileSerializer(schema) })
  }
  return compiled
}

export function assertName (kind: 'event' | 'message type', name: string): void {
  if (!NAME_PATTERN.test(name)) throw new FRT_ERR_INVALID_NAME(kind, name)
}
