import { Type } from 'typebox'
import { OFFSET_PATTERN } from '../protocol/offsets.js'
import type { Connection } from '../connection/connection.js'
import { DEFAULTS } from '../defaults.js'
import { ErrorCode } from '../protocol/codes.js'
import { MAX_TOPIC_LENGTH } from '../protocol/frames.js'
import { RealtimeError } from '../messages/realtime-error.js'
import { compileMessage, type CompiledMessage } from '../messages/compile.js'
import type { SubscribeResult, TopicHub } from './hub.js'
import type { PresenceHub } from '../presence/hub.js'
import type { PresenceMembership } from '../presence/membership.js'

/** Presence as `$subscribe` needs it, handed in: presence/ comes after topics/. */
export interface SubscribePresence {
  hub: PresenceHub
  /** What the subscription makes of presence: see `membershipFor` in presence/membership.ts. */
  membershipFor: (connection: Connection, topic: string, watch: boolean) => Promise<PresenceMembership | undefined>
  /** The topic's members as the `presence` of the reply, JSON text. */
  snapshot: (topic: string) => Promise<string>
}

/** Topic names: any non-empty string up to `MAX_TOPIC_LENGTH` characters; routes decide which are allowed. */
export const TopicName = Type.String({ minLength: 1, maxLength: MAX_TOPIC_LENGTH })

const SubscribeData = Type.Object({
  topic: TopicName,
  since: Type.Optional(Type.String({ pattern: OFFSET_PATTERN })),
  epoch: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** Also hear the topic's presence changes, as `$presence.diff` frames. */
  presence: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

/** A topic's presence as `$presence` (and `$subscribe` with `presence: true`) answers it. */
export const PresenceReply = Type.Object({
  topic: Type.String(),
  users: Type.Integer(),
  connections: Type.Integer(),
  members: Type.Optional(Type.Array(Type.Object({
    user: Type.String(),
    connections: Type.Array(Type.Object({ connection: Type.String(), info: Type.Unknown() }))
  })))
})

const SubscribeReply = Type.Object({
  topic: Type.String(),
  offset: Type.String(),
  epoch: Type.String(),
  recovered: Type.Boolean(),
  /** With `presence: true`: the members once this connection watches them, so that diffs apply to them. */
  presence: Type.Optional(PresenceReply)
})

/** What the handler returns: the reply's fields, and the presence part as JSON text already. */
type SubscribeAnswer = SubscribeResult & { presence?: string }

const UnsubscribeData = Type.Object({ topic: TopicName }, { additionalProperties: false })
const UnsubscribeReply = Type.Object({ topic: Type.String() })

/**
 * `$subscribe` and `$unsubscribe`, dispatched like declared messages. A subscription on a topic
 * with presence joins it once it is live; if that fails, the subscription is undone.
 */
export function createTopicCommands (hub: TopicHub, presence: SubscribePresence, maxSubscriptions: number = DEFAULTS.maxSubscriptionsPerConnection): Map<string, CompiledMessage> {
  const subscribe = compileMessage(
    { data: SubscribeData, reply: SubscribeReply },
    async (data: { topic: string, since?: string, epoch?: string, presence?: boolean }, { connection }) => {
      const conn = connection as Connection
      const authorize = conn.declared.authorizeSubscribe
      // The server's own topics are the connection's already: a resume from an offset is allowed.
      const serverTopic = conn.serverTopics?.has(data.topic) === true
      if (!serverTopic && (authorize === undefined || !(await authorize(data.topic, conn)))) {
        throw new RealtimeError(ErrorCode.FORBIDDEN, 'not allowed to subscribe to this topic')
      }
      if (!conn.subscriptions.has(data.topic) && conn.subscriptions.size >= maxSubscriptions) {
        throw new RealtimeError(ErrorCode.FORBIDDEN, `a connection may hold at most ${maxSubscriptions} topics`)
      }
      const membership = await presence.membershipFor(conn, data.topic, data.presence === true)
      const result: SubscribeAnswer = await hub.subscribe(conn, data.topic, data.since, data.epoch, membership)
      // Superseded meanwhile: the newer subscription makes its own membership.
      if (membership === undefined || conn.subscriptions.get(data.topic)?.presence !== membership) return result
      try {
        await membership.enter(presence.hub, conn, data.topic)
        if (membership.watch) result.presence = await presence.snapshot(data.topic)
      } catch (err) {
        if (conn.subscriptions.get(data.topic)?.presence === membership) hub.unsubscribe(conn, data.topic)
        throw err
      }
      return result
    }
  )
  const serializeResult = subscribe.serializeReply as (value: unknown) => string
  // The presence part is already JSON: spliced in, not parsed and serialized again.
  subscribe.serializeReply = (value) => {
    const { presence: members, ...result } = value as SubscribeAnswer
    const body = serializeResult(result)
    return members === undefined ? body : body.slice(0, -1) + ',"presence":' + members + '}'
  }
  const unsubscribe = compileMessage(
    { data: UnsubscribeData, reply: UnsubscribeReply },
    (data: { topic: string }, { connection }) => {
      if ((connection as Connection).serverTopics?.has(data.topic) === true) {
        throw new RealtimeError(ErrorCode.FORBIDDEN, 'the server subscribed this connection to this topic')
      }
      hub.unsubscribe(connection as Connection, data.topic)
      return { topic: data.topic }
    }
  )
  return new Map([['$subscribe', subscribe], ['$unsubscribe', unsubscribe]])
}
