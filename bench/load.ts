/*
 * A load generator that costs little on its own core: raw TCP sockets, one handshake each,
 * pre-masked frames written in batches, and replies counted from frame headers without parsing
 * them. Run as a child of bench/echo.ts; it answers `count` messages with replies received.
 */
import type { Socket } from 'node:net'
import { FrameCounter, maskedTextFrame, open } from './raw-client.js'

export interface LoadPlan {
  port: number
  path: string
  connections: number
  /** Pipelined mode: messages each connection keeps in flight. */
  inflight?: number
  /** Fixed-rate mode: messages per second over all connections. */
  ratePerSecond?: number
  payload: string
}

export async function runLoad (plan: LoadPlan): Promise<() => number> {
  const frame = maskedTextFrame(plan.payload)
  const batch = Buffer.concat(Array.from({ length: Math.max(plan.inflight ?? 1, 64) }, () => frame))
  let replies = 0
  const sockets: Socket[] = []
  for (let i = 0; i < plan.connections; i++) {
    const { socket, rest } = await open(plan.port, plan.path)
    const counter = new FrameCounter()
    // A realtime.v1 server's first frame is $welcome: counted once, before any measurement window.
    const onFrames = (chunk: Buffer): void => {
      const n = counter.count(chunk)
      replies += n
      if (plan.inflight !== undefined && n > 0) {
        // Keep `inflight` messages outstanding: send as many as just came back, in one write.
        let toSend = n
        while (toSend > 0) {
          const now = Math.min(toSend, batch.length / frame.length)
          socket.write(batch.subarray(0, now * frame.length))
          toSend -= now
        }
      }
    }
    socket.on('data', onFrames)
    if (rest.length > 0) onFrames(rest)
    sockets.push(socket)
  }
  if (plan.inflight !== undefined) {
    for (const socket of sockets) socket.write(batch.subarray(0, plan.inflight * frame.length))
  } else if (plan.ratePerSecond !== undefined) {
    const tickMs = 5
    let carry = 0
    let next = 0
    const timer = setInterval(() => {
      carry += plan.ratePerSecond! * tickMs / 1000
      while (carry >= 1) {
        sockets[next]!.write(frame)
        next = (next + 1) % sockets.length
        carry--
      }
    }, tickMs)
    process.once('disconnect', () => clearInterval(timer))
  }
  return () => replies
}

if (process.send !== undefined && process.argv[2] !== undefined) {
  const plan = JSON.parse(process.argv[2]) as LoadPlan
  const count = await runLoad(plan)
  process.on('message', (message) => {
    if (message === 'count') process.send?.(count())
  })
  process.on('disconnect', () => process.exit(0))
  process.send('ready')
}
