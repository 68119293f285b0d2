/*
 * The servers `npm run bench` compares, one per process: `node --import tsx bench/servers.ts <kind>`.
 * It prints its port on stdout and answers `cpu` and `memory` messages on the IPC channel (the
 * presence server also `populate`s a room).
 *
 * Every peer serves the same three things on the same socket, so one load generator drives them
 * all: an echo, a subscription to one broadcast group, and a publish to that group (see
 * bench/wire.ts for each peer's frames).
 */
import { createServer } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyMetrics from 'fastify-metrics'
import { Server as SocketIoServer } from 'socket.io'
import { Type } from 'typebox'
import { Compile } from 'typebox/compile'
import { WebSocket, WebSocketServer, type RawData } from 'ws'
import { buildApp } from '../app/app.js'
import { declareChatRoute, ROOM_PATTERN } from '../app/chat-route.js'
import { loadConfig, traceSampleRatio } from '../app/config.js'
import realtime, { type PresenceEntry } from '../plugin/index.js'
import { BENCH_AUTH_SECRET } from './auth-secret.js'
import { isPublish, isSubscribe } from './wire.js'

export type ServerKind = 'ws' | 'bare' | 'handwritten' | 'socketio' | 'plugin' | 'protected' | 'metrics-on' | 'metrics-off' | 'chat' | 'presence'

/** Asks the presence server to add `members` entries to `topic`'s presence; it answers `populated`. */
export interface PopulateMessage {
  populate: string
  members: number
}

interface Listening {
  port: number
  close: () => Promise<void>
  populate?: (topic: string, members: number) => Promise<void>
}

/**
 * The example app with every protection on: upgrade rate limiting (set high: every client here
 * shares one IP), a connection cap, idle timeout, Origin policy, heartbeats, slow-consumer limit,
 * a per-connection message budget (high enough never to refuse), validation and metrics.
 */
const PROTECTIONS = {
  LOG_LEVEL: 'warn',
  WS_UPGRADE_RATE_LIMIT: '1000000000',
  WS_MAX_CONNECTIONS: '50000',
  WS_IDLE_TIMEOUT_MS: '600000',
  WS_ALLOWED_ORIGINS: 'http://bench.local',
  WS_MESSAGES_PER_SECOND: '100000000',
  // Longer than any run: the raw load generators count frames and answer no pings.
  WS_HEARTBEAT_MS: '600000'
}

async function listenFastify (app: FastifyInstance): Promise<Listening> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address')
  return { port: address.port, close: async () => await app.close() }
}

/** One broadcast group for the peers without topics: who subscribed, and a loop that sends to each. */
class Group {
  readonly members = new Set<WebSocket>()

  handle (socket: WebSocket, data: RawData, isBinary: boolean): void {
    const bytes = data as Buffer
    if (isPublish(bytes)) {
      // The broadcast loop ws's README shows: one send per member.
      for (const member of this.members) {
        if (member.readyState === WebSocket.OPEN) member.send(bytes, { binary: false })
      }
    } else if (isSubscribe(bytes)) {
      this.members.add(socket)
      socket.once('close', () => this.members.delete(socket))
    } else {
      socket.send(bytes, { binary: isBinary })
    }
  }
}

/** Raw `ws`: the floor for any WebSocket server in Node. */
async function wsServer (): Promise<Listening> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((resolve) => server.once('listening', resolve))
  const group = new Group()
  server.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => group.handle(socket, data, isBinary))
  })
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const client of server.clients) client.terminate()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}

/** `@fastify/websocket` sending every frame back unread: the floor for a Fastify route. */
async function bareServer (): Promise<Listening> {
  const app = Fastify()
  await app.register(fastifyWebsocket)
  const group = new Group()
  app.get('/ws', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => group.handle(socket, data, isBinary))
  })
  return await listenFastify(app)
}

/** What a careful developer writes by hand: JSON, a compiled TypeBox check, a `$reply`. */
async function handwrittenServer (): Promise<Listening> {
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
  return await listenFastify(app)
}

/**
 * Socket.IO 4 over its websocket transport only (no polling, no upgrade dance), the way its docs
 * tune it for throughput: events echoed, a room joined, `socket.to(room).emit` for broadcasts.
 */
async function socketIoServer (): Promise<Listening> {
  const http = createServer()
  // A heartbeat slower than any run keeps ping frames out of the reply counts.
  const io = new SocketIoServer(http, { transports: ['websocket'], serveClient: false, pingInterval: 600_000, pingTimeout: 600_000 })
  io.on('connection', (socket) => {
    socket.on('echo', (data: unknown) => socket.emit('echo', data))
    // The in-memory adapter joins synchronously.
    socket.on('join', () => { socket.join('bench') })
    socket.on('say', (data: unknown) => socket.to('bench').emit('message', data))
  })
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  return {
    port: (http.address() as { port: number }).port,
    close: async () => { await new Promise((resolve) => io.close(resolve)) }
  }
}

/** The example app's route without the app's logger, with or without metrics: what metrics cost. */
async function chatServer (withMetrics: boolean): Promise<Listening> {
  const app = Fastify()
  if (withMetrics) await app.register(fastifyMetrics.default, { endpoint: '/metrics', clearRegisterOnInit: true })
  await app.register(realtime, { metrics: withMetrics ? undefined : false, messagesPerSecond: 100_000_000, traceSampleRatio: traceSampleRatio(process.env) })
  declareChatRoute(app)
  return await listenFastify(app)
}

/** The chat route's rooms, for the route beside it that has no presence. */
const ROOM_TOPIC = new RegExp(`^room:${ROOM_PATTERN.slice(1)}`)
/** Entries per broker update while populating: what one Redis script call takes in comfortably. */
const POPULATE_BATCH = 1_000

/**
 * The example app with every protection on, its broker and presence window as the environment
 * says (REDIS_URL, WS_PRESENCE_WINDOW_MS), and beside its chat route, whose rooms all have
 * presence, `/plain`: the same rooms without it. `populate` writes members straight into the
 * broker, as if other nodes' connections held them, so a room can outgrow one process's sockets.
 */
async function presenceServer (): Promise<Listening> {
  const app = await buildApp(loadConfig({ ...process.env, ...PROTECTIONS }))
  app.wsRoute('/plain', { authorizeSubscribe: (topic) => ROOM_TOPIC.test(topic) })
  const listening = await listenFastify(app)
  const { broker } = app.realtime
  const populate = async (topic: string, members: number): Promise<void> => {
    // A Redis broker may still be connecting, and fails its commands at once until it is up.
    while (!broker.healthy) await sleep(10)
    for (let first = 0; first < members; first += POPULATE_BATCH) {
      const joins = Array.from({ length: Math.min(POPULATE_BATCH, members - first) }, (_, i): PresenceEntry => {
        const n = first + i
        return { connection: `synthetic-${n}`, user: `user-${n}`, info: JSON.stringify({ name: `user-${n}` }) }
      })
      await broker.updatePresence(topic, { joins, leaves: [] })
    }
  }
  return { ...listening, populate }
}

const builders: Record<ServerKind, () => Promise<Listening>> = {
  ws: wsServer,
  bare: bareServer,
  handwritten: handwrittenServer,
  socketio: socketIoServer,
  plugin: async () => await listenFastify(await buildApp(loadConfig(PROTECTIONS))),
  protected: async () => await listenFastify(await buildApp(loadConfig({ ...PROTECTIONS, AUTH_SECRET: BENCH_AUTH_SECRET }))),
  'metrics-on': async () => await chatServer(true),
  'metrics-off': async () => await chatServer(false),
  // As configured by the environment (REDIS_URL for the Redis broker), budget raised.
  chat: async () => await listenFastify(await buildApp(loadConfig({ ...process.env, LOG_LEVEL: 'warn', WS_MESSAGES_PER_SECOND: '100000000', WS_HEARTBEAT_MS: '600000' }))),
  presence: presenceServer
}

const kind = process.argv[2] as ServerKind
const build = builders[kind]
if (build === undefined) throw new Error(`unknown server kind ${kind}: use ${Object.keys(builders).join(', ')}`)
const server = await build()
process.on('message', (message) => {
  if (message === 'cpu') process.send?.(process.cpuUsage())
  if (message === 'memory') {
    // Run with --expose-gc: collect twice so what remains is what the connections hold.
    const collect = (globalThis as { gc?: () => void }).gc
    collect?.()
    collect?.()
    process.send?.(process.memoryUsage())
  }
  if (typeof message === 'object' && message !== null && server.populate !== undefined) {
    const { populate, members } = message as PopulateMessage
    server.populate(populate, members).then(() => process.send?.('populated'), (err: unknown) => {
      console.error(err)
      process.exit(1)
    })
  }
})
process.on('disconnect', () => {
  server.close().finally(() => process.exit(0)).catch(() => process.exit(1))
})
console.log(server.port)
