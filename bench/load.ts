/*
 * The echo load generator, cheap on its own core: raw TCP sockets, one handshake each,
 * pre-masked frames written in batches, replies counted from frame headers without parsing them.
 * At a fixed rate every send time is queued per socket and each reply (servers echo in order on
 * a socket) closes the oldest one into a latency histogram. Run as a child of the benchmarks; it
 * answers `mark` with the replies so far and the latency since the previous `mark`.
 */
import type { Socket } from 'node:net'
import { createHistogram } from 'node:perf_hooks'
import { FrameCounter, open } from './raw-client.js'
import { clientFrame, OP_TEXT } from './ws-frames.js'
import type { Wire } from './wire.js'

export interface LoadPlan {
  port: number
  wire: Wire
  connections: number
  /** Pipelined mode: messages each connection keeps in flight. */
  inflight?: number
  /** Fixed-rate mode: messages per second over all connections. */
  ratePerSecond?: number
}

export interface LoadMark {
  replies: number
  /** Reply latency in ms since the previous mark (fixed-rate mode only). */
  latency?: { p50: number, p99: number, p999: number }
}

interface Peer {
  socket: Socket
  counter: FrameCounter
  /** Frames still expected before the first reply. */
  unanswered: number
  sentAt: number[]
  sentHead: number
}

export async function runLoad (plan: LoadPlan): Promise<() => LoadMark> {
  const { wire } = plan
  const frame = clientFrame(OP_TEXT, wire.echo)
  const batch = Buffer.concat(Array.from({ length: Math.max(plan.inflight ?? 1, 64) }, () => frame))
  const histogram = createHistogram()
  let replies = 0
  const peers: Peer[] = []
  let settled = 0
  let allSettled: () => void = () => {}
  const welcomed = new Promise<void>((resolve) => { allSettled = resolve })

  const onReplies = (peer: Peer, n: number): void => {
    replies += n
    if (plan.inflight !== undefined) {
      // Keep `inflight` messages outstanding: send as many as just came back, in one write.
      let toSend = n
      while (toSend > 0) {
        const now = Math.min(toSend, batch.length / frame.length)
        peer.socket.write(batch.subarray(0, now * frame.length))
        toSend -= now
      }
    } else {
      const now = performance.now()
      for (let i = 0; i < n && peer.sentHead < peer.sentAt.length; i++) {
        histogram.record(Math.max(1, Math.round((now - peer.sentAt[peer.sentHead++]!) * 1e6)))
      }
      if (peer.sentHead > 1024) {
        peer.sentAt = peer.sentAt.slice(peer.sentHead)
        peer.sentHead = 0
      }
    }
  }

  for (let i = 0; i < plan.connections; i++) {
    const { socket, rest } = await open(plan.port, wire.path)
    const peer: Peer = { socket, counter: new FrameCounter(), unanswered: wire.welcomeFrames, sentAt: [], sentHead: 0 }
    const onData = (chunk: Buffer): void => {
      let n = peer.counter.count(chunk)
      if (peer.unanswered > 0) {
        // Welcome frames are the server's own, not replies.
        const welcome = Math.min(n, peer.unanswered)
        peer.unanswered -= welcome
        n -= welcome
        if (peer.unanswered === 0 && ++settled === plan.connections) allSettled()
      }
      if (n > 0) onReplies(peer, n)
    }
    socket.on('data', onData)
    for (const greeting of wire.greeting) socket.write(clientFrame(OP_TEXT, greeting))
    if (wire.welcomeFrames === 0 && ++settled === plan.connections) allSettled()
    if (rest.length > 0) onData(rest)
    peers.push(peer)
  }
  await welcomed

  if (plan.inflight !== undefined) {
    for (const { socket } of peers) socket.write(batch.subarray(0, plan.inflight * frame.length))
  } else if (plan.ratePerSecond !== undefined) {
    const tickMs = 5
    let carry = 0
    let next = 0
    const timer = setInterval(() => {
      carry += plan.ratePerSecond! * tickMs / 1000
      const now = performance.now()
      while (carry >= 1) {
        const peer = peers[next]!
        peer.sentAt.push(now)
        peer.socket.write(frame)
        next = (next + 1) % peers.length
        carry--
      }
    }, tickMs)
    process.once('disconnect', () => clearInterval(timer))
  }

  return () => {
    const mark: LoadMark = { replies }
    if (plan.ratePerSecond !== undefined && histogram.count > 0) {
      const ms = (percentile: number): number => histogram.percentile(percentile) / 1e6
      mark.latency = { p50: ms(50), p99: ms(99), p999: ms(99.9) }
    }
    histogram.reset()
    return mark
  }
}

if (process.send !== undefined && process.argv[2] !== undefined) {
  const plan = JSON.parse(process.argv[2]) as LoadPlan
  const mark = await runLoad(plan)
  process.on('message', (message) => {
    if (message === 'mark') process.send?.(mark())
  })
  process.on('disconnect', () => process.exit(0))
  process.send('ready')
}
