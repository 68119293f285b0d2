import { readFile } from 'node:fs/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import realtime from '../plugin/index.js'
import { declareChatRoute } from './chat-route.js'
import type { AppConfig } from './config.js'

const publicDir = new URL('./public/', import.meta.url)

/** Builds the example app; `server.ts` listens, tests build it on port 0. */
export async function buildApp (config: AppConfig): Promise<FastifyInstance> {
  const app = Fastify({ logger: { level: config.logLevel } })
  await app.register(realtime, {
    maxPayload: config.maxPayload,
    heartbeatMs: config.heartbeatMs,
    messagesPerSecond: config.messagesPerSecond
  })
  declareChatRoute(app)

  const page = await readFile(new URL('index.html', publicDir))
  const script = await readFile(new URL('demo.js', publicDir))
  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))
  app.get('/demo.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(script))
  return app
}
