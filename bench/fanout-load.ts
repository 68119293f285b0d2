/*
 * The fan-out load generator: many subscribers on raw TCP sockets, one publisher sending at a
 * fixed rate with its send time inside the published text. Every subscriber counts deliveries
 * from frame headers; one in `sampleEvery` also reads the send time back out of the bytes, which
 * gives delivery latency without parsing 10,000 copies of every message. Run as a child of the
 * benchmarks; it answers `mark` with the counts so far and the latency since the previous mark.
 */
import type { Socket } from 'node:net'
import { createHistogram } from 'node:perf_hooks'
import { FrameCounter, open } from './raw-client.js'
import { clientFrame, OP_TEXT } from './ws-frames.js'
import { MARKER, MARKER_PATTERN, type Wire } from './wire.js'

export interface FanoutPlan {
  port: number
  wire: Wire
  subscribers: number
  /** Handshakes in flight while subscribers connect. */
  concurrency: number
  publishesPerSecond: number
  sampleEvery: number
}

export interface FanoutMark {
  deliveries: number
  published: number
  latency: { p50: number, p99: number, p999: number } | undefined
}

const plan = JSON.parse(process.argv[2] ?? '{}') as FanoutPlan
const { wire } = plan
const histogram = createHistogram()
const sockets: Socket[] = []
let deliveries = 0
let published = 0

/** Connects, greets, subscribes, and resolves once the subscription is acknowledged. */
async function subscribe (index: number): Promise<void> {
  const { socket, rest } = await open(plan.port, wire.path)
  sockets.push(socket)
  const counter = new FrameCounter()
  const sampled = index % plan.sampleEvery === 0
  let welcomes = wire.welcomeFrames
  let acks = wire.subscribeAckFrames
  await new Promise<void>((resolve) => {
    const subscribeNow = (): void => {
      // Socket.IO drops events that arrive before its namespace connect completes: subscribe
      // only once the server has said everything it says unasked.
      socket.write(clientFrame(OP_TEXT, wire.subscribe))
      if (acks === 0) resolve()
    }
    const onData = (chunk: Buffer): void => {
      let n = counter.count(chunk)
      while (n > 0 && welcomes > 0) {
        n--
        if (--welcomes === 0) subscribeNow()
      }
      while (n > 0 && acks > 0) {
        n--
        if (--acks === 0) resolve()
      }
      if (n === 0) return
      deliveries += n
      if (sampled) {
        const now = (performance.timeOrigin + performance.now()) * 1000
        for (const match of chunk.toString('latin1').matchAll(MARKER_PATTERN)) {
          histogram.record(Math.max(1, Math.round((now - Number(match[1])) * 1000)))
        }
      }
    }
    socket.on('data', onData)
    for (const greeting of wire.greeting) socket.write(clientFrame(OP_TEXT, greeting))
    if (welcomes === 0) subscribeNow()
    if (rest.length > 0) onData(rest)
  })
}

let next = 0
await Promise.all(Array.from({ length: plan.concurrency }, async () => {
  while (next < plan.subscribers) await subscribe(next++)
}))

const { socket: publisher } = await open(plan.port, wire.path)
publisher.on('data', () => {})
for (const greeting of wire.greeting) publisher.write(clientFrame(OP_TEXT, greeting))
const timer = setInterval(() => {
  const micros = Math.round((performance.timeOrigin + performance.now()) * 1000)
  publisher.write(clientFrame(OP_TEXT, wire.publishTemplate.replace(MARKER, `@${micros}@`)))
  published++
}, 1000 / plan.publishesPerSecond)

process.on('message', (message) => {
  if (message !== 'mark') return
  const ms = (percentile: number): number => histogram.percentile(percentile) / 1e6
  const mark: FanoutMark = {
    deliveries,
    published,
    latency: histogram.count > 0 ? { p50: ms(50), p99: ms(99), p999: ms(99.9) } : undefined
  }
  histogram.reset()
  process.send?.(mark)
})
process.on('disconnect', () => {
  clearInterval(timer)
  for (const socket of [...sockets, publisher]) socket.destroy()
  process.exit(0)
})
process.send?.('ready')
