import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { RealtimeConnection } from '../plugin/index.js'

/** Room names as they appear in topics `room:<name>`. */
export const ROOM_PATTERN = '^[a-z0-9-]{1,32}$'
const ROOM_TOPIC = /^room:[a-z0-9-]{1,32}$/

export const EchoData = Type.Object({ text: Type.String({ maxLength: 1000 }) }, { additionalProperties: false })
export const EchoReply = Type.Object({ text: Type.String() })
export const SayData = Type.Object({
  room: Type.String({ pattern: ROOM_PATTERN }),
  text: Type.String({ minLength: 1, maxLength: 2000 })
}, { additionalProperties: false })
export const SayReply = Type.Object({ offset: Type.String() })
/** Sent to one user's connections on every node (`sendToUser`), or published on its `user:<id>` topic. */
export const Notice = Type.Object({ text: Type.String() })
export const ChatMessage = Type.Object({
  room: Type.String(),
  text: Type.String(),
  from: Type.String(),
  ts: Type.Integer()
})

/** What each member of a room shows the others. */
export const MemberInfo = Type.Object({ name: Type.String() })

/** The name a connection speaks and appears under: its user id, or a short anonymous one. */
function displayName (connection: RealtimeConnection): string {
  return connection.identity?.id ?? `anon-${connection.id.slice(0, 8)}`
}

/** The chat route: `echo` answers in kind, `say` publishes to a room's topic, rooms have presence. */
export function declareChatRoute (app: FastifyInstance) {
  return app
    .wsRoute('/ws', {
      events: { message: ChatMessage, notice: Notice },
      authorizeSubscribe: (topic) => ROOM_TOPIC.test(topic),
      // Signed-in users get their own topic from the start, resumed like any other.
      subscriptions: (connection) => connection.identity === undefined ? [] : [`user:${connection.identity.id}`],
      presence: {
        info: MemberInfo,
        member: (connection) => ({ name: displayName(connection) }),
        authorize: (topic) => ROOM_TOPIC.test(topic)
      }
    })
    .message('echo', { data: EchoData, reply: EchoReply }, (data) => ({ text: data.text }))
    .message('say', { data: SayData, reply: SayReply }, async (data, { connection, publish }) => {
      const { offset } = await publish(`room:${data.room}`, 'message', {
        room: data.room,
        text: data.text,
        from: displayName(connection),
        ts: Date.now()
      })
      return { offset }
    })
}

/** The route's type, for typed clients. */
export type ChatRoute = ReturnType<typeof declareChatRoute>
