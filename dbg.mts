import Fastify from 'fastify'
import { WebSocket } from 'ws'
import realtime from './plugin/index.ts'
const app = Fastify()
await app.register(realtime, { drainMs: 1000 })
app.wsRoute('/ws')
await app.listen({ port: 0, host: '127.0.0.1' })
const port = (app.server.address() as any).port
const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`)
await new Promise((r) => ws.once('message', r))
ws.pause()
const t0 = Date.now()
console.log('draining')
await app.realtime.drain()
console.log('drained', Date.now() - t0)
await app.close()
console.log('closed')
