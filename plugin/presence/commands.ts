import { Type } from 'typebox'
import type { Connection } from '../connection/connection.js'
import { DEFAULTS } from '../defaults.js'
import { compileMessage, type CompiledMessage } from '../messages/compile.js'
import { MAX_PRESENCE_LIMIT } from '../protocol/frames.js'
import { PresenceReply, TopicName } from '../topics/commands.js'
import type { PresenceHub } from './hub.js'
import { assertPresenceReadable } from './membership.js'

const PresenceData = Type.Object({
  topic: TopicName,
  /** Only the counts, no members. */
  count: Type.Optional(Type.Boolean()),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PRESENCE_LIMIT }))
}, { additionalProperties: false })

/**
 * `$presence`, dispatched like declared messages. The reply is built from entries whose info is
 * already JSON (the route's schema serialized it when the member joined), so it is written as
 * it comes rather than parsed and serialized again.
 */
export function createPresenceCommand (presence: PresenceHub): CompiledMessage {
  const command = compileMessage(
    { data: PresenceData, reply: PresenceReply },
    async (data: { topic: string, count?: boolean, limit?: number }, { connection }) => {
      await assertPresenceReadable(connection as Connection, data.topic)
      return await presence.replyBody(data.topic, data.count === true ? undefined : data.limit ?? DEFAULTS.presenceLimit)
    }
  )
  return { ...command, serializeReply: (body) => body as string }
}
