import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import fastifyRateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import { RedisBroker } from '../plugin/broker/redis.js'
import realtime, { MemoryBroker } from '../plugin/index.js'
import { jwtAuthenticator } from './authenticate.js'
import { declareChatRoute } from './chat-route.js'
import type { AppConfig } from './config.js'
import { loggerOptions, type LogStream } from './logger.js'
import { readTlsPair, secureContextOptions, serveTls } from './tls.js'

const publicDir = new URL('./public/', import.meta.url)
/** The example app's version, which its AsyncAPI document carries. */
const APP_VERSION = (JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }).version

/**
 * Builds the example app; `server.ts` listens, tests build it on port 0 (and may pass the stream
 * logs go to, stdout otherwise). With `config.tls` it serves HTTPS, and a certificate pair that
 * cannot be read or does not match throws a `ConfigError`.
 */
export async function buildApp (config: AppConfig, logStream?: LogStream): Promise<FastifyInstance> {
  const tlsPair = config.tls === undefined ? undefined : await readTlsPair(config.tls)
  const app: FastifyInstance = Fastify({
    trustProxy: config.trustProxy,
    logger: loggerOptions(config, logStream),
    ...(tlsPair === undefined ? {} : { https: secureContextOptions(tlsPair) })
  })
  // Registered first, so the plugin's ws_* metrics join its registry and its /metrics.
  await app.register(fastifyMetrics.default, { endpoint: '/metrics', clearRegisterOnInit: true })
  app.decorate('certificates', tlsPair === undefined ? null : serveTls(app, tlsPair))
  const broker = config.redisUrl === undefined
    ? new MemoryBroker({ historySize: config.historySize })
    : await useRedis(app, config.redisUrl, config)
  await app.register(realtime, {
    broker,
    maxPayload: config.maxPayload,
    heartbeatMs: config.heartbeatMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    maxBufferedBytes: config.maxBufferedBytes,
    upgradeRateLimit: config.upgradeRateLimit,
    headersTimeoutMs: config.headersTimeoutMs,
    maxSockets: config.maxSockets,
    messagesPerSecond: config.messagesPerSecond,
    identityMessagesPerSecond: config.identityMessagesPerSecond,
    addressMessagesPerSecond: config.addressMessagesPerSecond,
    allowedOrigins: config.allowedOrigins,
    drainMs: config.drainMs,
    presenceWindowMs: config.presenceWindowMs,
    traceSampleRatio: config.traceSampleRatio,
    authenticate: config.authSecret === undefined ? undefined : jwtAuthenticator(config.authSecret),
    asyncapi: { info: { title: 'fastify-realtime chat example', version: APP_VERSION } }
  })
  // The plugin closes only a broker it made itself.
  app.addHook('onClose', async () => await broker.close())
  declareChatRoute(app)

  clientBundle ??= bundleClient()
  const bundle = await clientBundle
  const page = await readFile(new URL('index.html', publicDir))
  const script = await readFile(new URL('demo.js', publicDir))
  app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(page))
  app.get('/demo.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(script))
  app.get('/realtime-client.js', async (_request, reply) => await reply.type('text/javascript; charset=utf-8').send(bundle))
  return app
}

/**
 * With Redis, topics span nodes and the upgrade rate limit counts across them: the limiter is
 * registered here with Redis as its store, and the plugin uses it rather than its own.
 */
async function useRedis (app: FastifyInstance, url: string, config: AppConfig): Promise<RedisBroker> {
  const { upgradeRateLimit } = config
  const broker = new RedisBroker({ url, historySize: config.historySize, presenceLeaseMs: config.presenceLeaseMs, log: app.log.child({ component: 'broker' }) })
  if (upgradeRateLimit !== undefined && upgradeRateLimit > 0) {
    const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1_000 })
    redis.on('error', () => {})
    app.addHook('onClose', async () => { redis.disconnect() })
    // With Redis unreachable the limiter lets upgrades through rather than refusing everyone.
    await app.register(fastifyRateLimit, { global: false, redis, skipOnError: true, nameSpace: 'frt-upgrades:' })
  }
  return broker
}

/** Built once per process: tests build the app many times. */
let clientBundle: Promise<string> | undefined

/** The browser client (`fastify-realtime/client`), bundled at start for the demo page. */
async function bundleClient (): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('../plugin/client/index.ts', import.meta.url))],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false
  })
  return result.outputFiles[0]?.text ?? ''
}
