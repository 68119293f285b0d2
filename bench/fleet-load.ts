/*
 * The fleet part's load generator, one job per run, on raw TCP sockets (bench/raw-client.ts).
 * `user`: one connection of one user on each node; for every call the parent has a node make it
 * waits until each connection heard it (the `notice` event, or the close frame of a disconnect,
 * after which it reconnects them all) and answers with the slowest one's latency, from the start
 * of the call as the node stamped it on the shared monotonic clock. `requests`: closed-loop
 * pipelined `echo` messages, with or without a fresh idempotency key each, answering `mark` with
 * the replies so far. Run as a child of bench/fleet.ts.
 */
import type { Socket } from 'node:net'
import { monotonicMicros } from './fleet-clock.js'
import { FrameReader, open } from './raw-client.js'
import { OP_CLOSE, clientFrame, frameBytes } from './ws-frames.js'

export interface UserPlan {
  job: 'user'
  ports: number[]
  user: string
}

/** One call heard by every connection: the slowest one's latency. */
export interface UserSample {
  seq: number
  ms: number
}

export interface RequestsPlan {
  job: 'requests'
  port: number
  connections: number
  inflight: number
  /** Each message with an idempotency key of its own, prefixed by this; plain messages when absent. */
  keyPrefix?: string
}

export interface RequestsMark {
  replies: number
  errors: number
}

export type FleetLoadPlan = UserPlan | RequestsPlan

const sockets = new Set<Socket>()

function header (user: string): string {
  return `x-user: ${user}\r\n`
}

/** A connection of `user`, welcomed; `onFrame` sees each later frame with when its chunk arrived. */
async function connect (port: number, user: string, onFrame: (opcode: number, payload: Buffer, arrivedAt: number) => void): Promise<Socket> {
  const { socket, rest } = await open(port, '/ws', header(user))
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
  const reader = new FrameReader()
  let welcomed: () => void = () => {}
  const welcome = new Promise<void>((resolve) => { welcomed = resolve })
  let frames = 0
  const onData = (chunk: Buffer): void => {
    const arrivedAt = monotonicMicros()
    for (const frame of reader.read(chunk)) {
      if (++frames === 1) welcomed()
      else onFrame(frame.opcode, frame.payload, arrivedAt)
    }
  }
  socket.on('data', onData)
  if (rest.length > 0) onData(rest)
  await welcome
  return socket
}

const NOTICE = Buffer.from('{"type":"notice"')

async function user (plan: UserPlan): Promise<void> {
  /** Each connection's latency for a call under way, by call and node. */
  const heard = new Map<number, Array<number | undefined>>()
  const current: Array<Socket | undefined> = plan.ports.map(() => undefined)
  const onFrame = (index: number) => (opcode: number, payload: Buffer, arrivedAt: number): void => {
    let seq: number
    let sentAt: number
    if (opcode === OP_CLOSE) {
      // Its code, then the reason the node gave: `<seq>@<sentAt>`.
      const [seqText, sentText] = payload.subarray(2).toString().split('@')
      seq = Number(seqText)
      sentAt = Number(sentText)
      current[index]?.end(clientFrame(OP_CLOSE, payload.subarray(0, 2)))
    } else if (startsWith(payload, NOTICE)) {
      const { data } = JSON.parse(payload.toString()) as { data: { seq: number, sentAt: number } }
      seq = data.seq
      sentAt = data.sentAt
    } else {
      throw new Error(`unexpected frame ${payload.toString()}`)
    }
    let call = heard.get(seq)
    if (call === undefined) heard.set(seq, call = plan.ports.map(() => undefined))
    if (call[index] !== undefined) throw new Error(`connection ${index} heard call ${seq} twice`)
    call[index] = (arrivedAt - sentAt) / 1000
    if (call.some((ms) => ms === undefined)) return
    heard.delete(seq)
    const sample: UserSample = { seq, ms: Math.max(...call as number[]) }
    // A disconnect is told once the user is back on every node, ready for the next call.
    if (opcode !== OP_CLOSE) process.send?.(sample)
    else connectAll().then(() => process.send?.(sample), fail)
  }
  const connectAll = async (): Promise<void> => {
    await Promise.all(plan.ports.map(async (port, index) => {
      current[index] = await connect(port, plan.user, onFrame(index))
    }))
  }
  await connectAll()
  process.send?.('ready')
}

function startsWith (payload: Buffer, prefix: Buffer): boolean {
  return payload.length >= prefix.length && payload.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
}

const REPLY = Buffer.from('{"type":"$reply"')

/**
 * Writes `text` as one client frame at `offset`: masked, as a client must, with the all-zero
 * key, so the payload goes as it is and a frame costs one string write. Payloads under 126 bytes.
 */
function writeFrame (buffer: Buffer, offset: number, text: string): number {
  const length = buffer.write(text, offset + 6)
  if (length >= 126) throw new Error('frame too long for a one-byte length')
  buffer[offset] = 0x81
  buffer[offset + 1] = 0x80 | length
  buffer.writeUInt32BE(0, offset + 2)
  return 6 + length
}

async function requests (plan: RequestsPlan): Promise<() => RequestsMark> {
  let replies = 0
  let errors = 0
  let sent = 0
  const plain = '{"type":"echo","id":1,"data":{"text":"hello, benchmark"}}'
  const keyed = '{"type":"echo","id":1,"data":{"text":"hello, benchmark"},"idempotencyKey":"'
  const scratch = Buffer.allocUnsafe(128 * Math.max(plan.inflight, 64))
  /** `n` messages in one write, each with a key of its own when keyed. */
  const send = (socket: Socket, n: number): void => {
    while (n > 0) {
      const now = Math.min(n, scratch.length / 128)
      let offset = 0
      for (let i = 0; i < now; i++) {
        offset += writeFrame(scratch, offset, plan.keyPrefix === undefined ? plain : `${keyed}${plan.keyPrefix}${sent++}"}`)
      }
      // Copied: the write may still hold it when the scratch is reused.
      socket.write(Buffer.from(scratch.subarray(0, offset)))
      n -= now
    }
  }
  const peers = await Promise.all(Array.from({ length: plan.connections }, async (_, index) => {
    const { socket, rest } = await open(plan.port, '/ws', header(`bench-${index}`))
    sockets.add(socket)
    return { socket, rest }
  }))
  let welcomes = 0
  let allWelcomed: () => void = () => {}
  const welcomed = new Promise<void>((resolve) => { allWelcomed = resolve })
  for (const { socket, rest } of peers) {
    let pending = Buffer.alloc(0)
    let first = true
    const onData = (chunk: Buffer): void => {
      const buffer = pending.length === 0 ? chunk : Buffer.concat([pending, chunk])
      let offset = 0
      let answered = 0
      for (let size = frameBytes(buffer, offset); size > 0; offset += size, size = frameBytes(buffer, offset)) {
        if (first) {
          first = false
          if (++welcomes === plan.connections) allWelcomed()
          continue
        }
        // Server frames are unmasked; these payloads are under 64 KiB.
        const start = offset + ((buffer[offset + 1]! & 0x7f) === 126 ? 4 : 2)
        if (offset + size - start >= REPLY.length && buffer.compare(REPLY, 0, REPLY.length, start, start + REPLY.length) === 0) replies++
        else errors++
        answered++
      }
      pending = offset === buffer.length ? Buffer.alloc(0) : Buffer.from(buffer.subarray(offset))
      if (answered > 0) send(socket, answered)
    }
    socket.on('data', onData)
    if (rest.length > 0) onData(rest)
  }
  await welcomed
  for (const { socket } of peers) send(socket, plan.inflight)
  return () => ({ replies, errors })
}

function fail (err: unknown): void {
  console.error(err)
  process.exit(1)
}

const plan = JSON.parse(process.argv[2] ?? '{}') as FleetLoadPlan
process.on('disconnect', () => {
  for (const socket of sockets) socket.destroy()
  process.exit(0)
})
if (plan.job === 'user') {
  await user(plan)
} else {
  const mark = await requests(plan)
  process.on('message', (message) => {
    if (message === 'mark') process.send?.(mark())
  })
  process.send?.('ready')
}
