/*
 * The servers `npm run bench` compares, one per process: `node --import tsx bench/servers.ts <kind>`.
 * It prints its port on stdout and answers `cpu` and `memory` messages on the IPC channel.
 */
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { buildApp } from '../app/app.js'
import realtime from '../plugin/index.js'
import { loadConfig } from '../app/config.js'
import { declareChatRoute } from '../app/chat-route.js'
import fastifyMetrics from 'fastify-metrics'
import { BENCH_AUTH_SECRET } from './auth-secret.js'

export type ServerKind = 'plugin' | 'protected' | 'guarded' | 'minimal' | 'bare' | 'handwritten' | 'metrics-on' | 'metrics-off' | 'chat'

/** The example app itself, with the message budget raised so that it never limits the load. */
async function pluginServer (): Promise<FastifyInstance> {
  return await buildApp(loadConfig({ LOG_LEVEL: 'warn', WS_MESSAGES_PER_SECOND: '100000000' }))
}

/**
 * The example app with every protection on: JWT authentication, upgrade rate limiting (set
 * high: every client here shares one IP), a connection cap, idle timeout, Origin policy,
 * heartbeats, slow-consumer limit and metrics.
 */
async function protectedServer (): Promise<FastifyInstance> {
  return await buildApp(loadConfig({ ...GUARDS, AUTH_SECRET: BENCH_AUTH_SECRET }))
}

/** The same protections without authentication, to show what a JWT check costs per handshake. */
async function guardedServer (): Promise<FastifyInstance> {
  return await buildApp(loadConfig(GUARDS))
}

const GUARDS = {
  LOG_LEVEL: 'warn',
  WS_UPGRADE_RATE_LIMIT: '1000000000',
  WS_MAX_CONNECTIONS: '50000',
  WS_IDLE_TIMEOUT_MS: '600000',
  WS_ALLOWED_ORIGINS: 'http://bench.local',
  WS_MESSAGES_PER_SECOND: '100000000'
}

/** `@fastify/websocket` sending every frame back unread: the floor for any protocol. */
async function bareServer (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  app.get('/ws', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }))
  })
  return app
}

/** What a careful developer writes by hand: JSON, a compiled TypeBox check, a `$reply`. */
async function handwrittenServer (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  const echo = Compile(Type.Object({ text: Type.String({ maxLength: 1000 }) }))
  app.get('/ws', { websocket: true }, (socket) => {
    socket.on('message', (data) => {
      let message: { type?: unknown, id?: unknown, data?: { text: string } }
      try {
        message = JSON.parse(data.toString())
      } catch {
        return
      }
      if (message.type === 'echo' && echo.Check(message.data)) {
        socket.send(JSON.stringify({ type: '$reply', id: message.id, data: { text: message.data.text } }))
      }
    })
  })
  return app
}

/** The plugin alone on a bare Fastify: no fastify-metrics, no rate limiter, defaults otherwise. */
async function minimalServer (): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(realtime, { metrics: false })
  app.wsRoute('/ws')
  return app
}

/**
 * The example app's route without the app's logger, with or without fastify-metrics and the
 * plugin's ws_* metrics: what metrics cost per message. Started with `--import ./app/otel.ts`,
 * it also measures tracing.
 */
async function chatServer (withMetrics: boolean): Promise<FastifyInstance> {
  const app = Fastify()
  if (withMetrics) await app.register(fastifyMetrics.default, { endpoint: '/metrics', clearRegisterOnInit: true })
  await app.register(realtime, { metrics: withMetrics ? undefined : false, messagesPerSecond: 100_000_000 })
  declareChatRoute(app)
  return app
}

/** The example app as configured by the environment (REDIS_URL for the Redis broker), budget raised. */
async function chat (): Promise<FastifyInstance> {
  return await buildApp(loadConfig({ ...process.env, LOG_LEVEL: 'warn', WS_MESSAGES_PER_SECOND: '100000000' }))
}

const builders: Record<ServerKind, () => Promise<FastifyInstance>> = {
  chat,
  'metrics-on': async () => await chatServer(true),
  'metrics-off': async () => await chatServer(false),
  minimal: minimalServer,
  plugin: pluginServer,
  protected: protectedServer,
  guarded: guardedServer,
  bare: bareServer,
  handwritten: handwrittenServer
}

const kind = process.argv[2] as ServerKind
const build = builders[kind]
if (build === undefined) throw new Error(`unknown server kind ${kind}: use ${Object.keys(builders).join(', ')}`)
const app = await build()
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('expected a TCP address')
process.on('message', (message) => {
  if (message === 'cpu') process.send?.(process.cpuUsage())
  if (message === 'memory') {
    // Run with --expose-gc: collect twice so what remains is what the connections hold.
    const collect = (globalThis as { gc?: () => void }).gc
    collect?.()
    collect?.()
    process.send?.(process.memoryUsage())
  }
})
process.on('disconnect', () => {
  app.close().finally(() => process.exit(0)).catch(() => process.exit(1))
})
console.log(address.port)
