/*
 * Opens many idle WebSocket connections as fast as `concurrency` allows, each with its own
 * signed token when a secret is given, reports how long that took, and holds them open until
 * the parent disconnects. Run as a child of bench/connections.ts.
 */
import type { Socket } from 'node:net'
import { createSigner } from 'fast-jwt'
import { open } from './raw-client.js'
import { clientFrame, OP_TEXT } from './ws-frames.js'
import type { Wire } from './wire.js'

export interface ConnectPlan {
  port: number
  wire: Wire
  connections: number
  concurrency: number
  /** HS256 secret: each connection gets a distinct token, so no verifier cache can help. */
  authSecret?: string
}

const plan = JSON.parse(process.argv[2] ?? '{}') as ConnectPlan
const sign = plan.authSecret === undefined ? undefined : createSigner({ key: plan.authSecret, algorithm: 'HS256', expiresIn: 3_600_000 })
const headers = Array.from({ length: plan.connections }, (_, i) => sign === undefined ? '' : `Authorization: Bearer ${sign({ sub: `user-${i}` })}\r\n`)

const sockets: Socket[] = []
let next = 0
const startedAt = performance.now()
await Promise.all(Array.from({ length: plan.concurrency }, async () => {
  while (next < plan.connections) {
    const index = next++
    const { socket } = await open(plan.port, plan.wire.path, headers[index])
    // Frames the server sends (the $welcome) are read and dropped, as an idle client would.
    socket.on('data', () => {})
    for (const greeting of plan.wire.greeting) socket.write(clientFrame(OP_TEXT, greeting))
    sockets.push(socket)
  }
}))
const seconds = (performance.now() - startedAt) / 1000
process.send?.({ opened: sockets.length, seconds })
process.on('disconnect', () => {
  for (const socket of sockets) socket.destroy()
  process.exit(0)
})
