import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

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
export const ChatMessage = Type.Object({
  room: Type.String(),
  text: Type.String(),
  from: Type.String(),
  ts: Type.Integer()
})

/** The chat route: `echo` answers in kind, `say` publishes to a room's topic. */
export function declareChatRoute (app: FastifyInstance) {
  return app
    .wsRoute('/ws', {
      events: { message: ChatMessage },
      authorizeSubscribe: (topic) => ROOM_TOPIC.test(topic)
    })
    .message('echo', { data: EchoData, reply: EchoReply }, (data) => ({ text: data.text }))
    .message('say', { data: SayData, reply: SayReply }, async (data, { connection, publish }) => {
      const { offset } = await publish(`room:${data.room}`, 'message', {
        room: data.room,
        text: data.text,
        from: connection.identity?.id ?? `anon-${connection.id.slice(0, 8)}`,
        ts: Date.now()
      })
      return { offset }
    })
}

/** The route's type, for typed clients. */
export type ChatRoute = ReturnType<typeof declareChatRoute>
