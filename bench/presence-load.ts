/*
 * The presence load generator, one job per run: `join` has members arrive in one room at an
 * even pace, each as the client library does it (`$subscribe` with presence, whose answer holds
 * the members), and counts every frame each receives until the room is quiet; `read` times
 * sequential `$presence` requests on one connection, first as a stranger to the room, then as
 * one of its watchers; `subscribe` opens connections that each subscribe to a room and wait for
 * the reply. Replies are told from pushed frames by their first bytes, so only member 0 of a
 * join and the replies of a read are parsed. Run as a child of bench/presence.ts: it sends its
 * result once, then holds its sockets until the parent disconnects.
 */
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { MAX_PRESENCE_LIMIT, PRESENCE_DIFF_TYPE } from '../plugin/protocol/frames.js'
import { FrameReader, open } from './raw-client.js'
import { clientFrame, OP_TEXT, type Frame } from './ws-frames.js'

export interface JoinPlan {
  job: 'join'
  port: number
  topic: string
  members: number
  /** Members start joining evenly over this long. */
  overMs: number
  /** The room counts as settled once no member has heard anything for this long. */
  quietMs: number
}

export interface JoinResult {
  /** Frames each member received, in the order they joined. */
  frames: number[]
  /** From the first member's start to the last frame any member received. */
  settledMs: number
  /** Members that member 0 knows of at the end: every one, if the diffs are complete. */
  view: number
}

export interface ReadPlan {
  job: 'read'
  port: number
  topic: string
  warmup: number
  requests: number
  /** Each `$presence` request's data besides its topic. */
  reads: Array<{ limit?: number, count?: boolean }>
}

export interface ReadSample {
  p50: number
  p99: number
  /** The reply's size in bytes, and the room's connections as it counted them. */
  bytes: number
  connections: number
}

export interface ReadResult {
  /** One per read, with no watcher of the room on the node: each request is a broker read. */
  unwatched: ReadSample[]
  /** One per read, once this connection watches the room: the node answers from its view. */
  watched: ReadSample[]
}

export interface SubscribePlan {
  job: 'subscribe'
  port: number
  path: string
  connections: number
  concurrency: number
  /** Connection `i` subscribes to `room:bench-<i mod rooms>`. */
  rooms: number
  /** Subscribes with `presence: true`: a watcher of the room, not only a member. */
  presence: boolean
}

export interface SubscribeResult {
  opened: number
  seconds: number
}

export type PresencePlan = JoinPlan | ReadPlan | SubscribePlan

const REPLY = Buffer.from('{"type":"$reply"')
const ERROR = Buffer.from('{"type":"$error"')
const DIFF = Buffer.from(`{"type":"${PRESENCE_DIFF_TYPE}"`)

const sockets: Socket[] = []
let closedEarly = 0

interface Client {
  /** Every frame the server sent, the welcome included. */
  readonly frames: () => number
  /** Sends a message and resolves with its reply's payload; one at a time, so replies come in order. */
  request: (type: string, data: object) => Promise<Buffer>
}

/** Opens a connection and resolves once it is welcomed; `onFrame` sees every frame, the welcome too. */
async function connect (port: number, path: string, onFrame: (frame: Frame) => void = () => {}): Promise<Client> {
  const { socket, rest } = await open(port, path)
  sockets.push(socket)
  const reader = new FrameReader()
  // The welcome is awaited like a reply: the first frame answers it, a close refuses it.
  const waiting: Array<{ resolve: (payload: Buffer) => void, reject: (err: Error) => void }> = []
  const welcomed = new Promise<Buffer>((resolve, reject) => { waiting.push({ resolve, reject }) })
  let frames = 0
  let nextId = 1
  const onData = (chunk: Buffer): void => {
    for (const frame of reader.read(chunk)) {
      if (++frames === 1) waiting.shift()?.resolve(frame.payload)
      else if (startsWith(frame.payload, REPLY)) waiting.shift()?.resolve(frame.payload)
      else if (startsWith(frame.payload, ERROR)) waiting.shift()?.reject(new Error(frame.payload.toString()))
      onFrame(frame)
    }
  }
  socket.on('data', onData)
  socket.once('close', () => {
    closedEarly++
    for (const { reject } of waiting.splice(0)) reject(new Error('the server closed the connection'))
  })
  if (rest.length > 0) onData(rest)
  await welcomed
  return {
    frames: () => frames,
    request: async (type, data) => await new Promise((resolve, reject) => {
      waiting.push({ resolve, reject })
      socket.write(clientFrame(OP_TEXT, JSON.stringify({ type, id: nextId++, data })))
    })
  }
}

function startsWith (payload: Buffer, prefix: Buffer): boolean {
  return payload.length >= prefix.length && payload.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
}

interface Entry { connection: string }

/** What one member makes of the room: the snapshot's connections, then each diff's joins and leaves. */
function learn (view: Set<string>, frame: Frame): void {
  if (startsWith(frame.payload, DIFF)) {
    const { data } = JSON.parse(frame.payload.toString()) as { data: { joins: Entry[], leaves: Entry[] } }
    for (const { connection } of data.leaves) view.delete(connection)
    for (const { connection } of data.joins) view.add(connection)
  } else if (startsWith(frame.payload, REPLY)) {
    const { data } = JSON.parse(frame.payload.toString()) as { data: { presence?: { members?: Array<{ connections: Entry[] }> } } }
    for (const member of data.presence?.members ?? []) {
      for (const { connection } of member.connections) view.add(connection)
    }
  }
}

async function join (plan: JoinPlan): Promise<JoinResult> {
  if (plan.members > MAX_PRESENCE_LIMIT) throw new Error(`a snapshot lists at most ${MAX_PRESENCE_LIMIT} members`)
  const members: Array<Promise<Client>> = []
  const view = new Set<string>()
  let lastFrameAt = 0
  const startedAt = performance.now()
  const member = async (index: number): Promise<Client> => {
    const client = await connect(plan.port, '/ws', (frame) => {
      lastFrameAt = performance.now()
      if (index === 0) learn(view, frame)
    })
    await client.request('$subscribe', { topic: plan.topic, presence: true })
    return client
  }
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = (performance.now() - startedAt) / plan.overMs * plan.members
      while (members.length < plan.members && members.length <= due) members.push(member(members.length))
      if (members.length === plan.members) {
        clearInterval(timer)
        resolve()
      }
    }, 1)
  })
  const clients = await Promise.all(members)
  for (let quiet = 0; quiet < plan.quietMs; quiet = performance.now() - lastFrameAt) await sleep(plan.quietMs - quiet)
  if (closedEarly > 0) throw new Error(`${closedEarly} members were disconnected`)
  return { frames: clients.map((client) => client.frames()), settledMs: lastFrameAt - startedAt, view: view.size }
}

async function read (plan: ReadPlan): Promise<ReadResult> {
  const client = await connect(plan.port, '/ws')
  const measure = async (): Promise<ReadSample[]> => {
    const samples: ReadSample[] = []
    for (const options of plan.reads) {
      const latencies: number[] = []
      let reply: Buffer | undefined
      for (let i = 0; i < plan.warmup + plan.requests; i++) {
        const sentAt = performance.now()
        reply = await client.request('$presence', { topic: plan.topic, ...options })
        if (i >= plan.warmup) latencies.push(performance.now() - sentAt)
      }
      if (reply === undefined) throw new Error('no request made')
      latencies.sort((x, y) => x - y)
      const { data } = JSON.parse(reply.toString()) as { data: { connections: number } }
      samples.push({
        p50: latencies[Math.floor(latencies.length * 0.5)] ?? NaN,
        p99: latencies[Math.floor(latencies.length * 0.99)] ?? NaN,
        bytes: reply.length,
        connections: data.connections
      })
    }
    return samples
  }
  const unwatched = await measure()
  await client.request('$subscribe', { topic: plan.topic, presence: true })
  return { unwatched, watched: await measure() }
}

async function subscribe (plan: SubscribePlan): Promise<SubscribeResult> {
  let opened = 0
  let next = 0
  const startedAt = performance.now()
  await Promise.all(Array.from({ length: plan.concurrency }, async () => {
    while (next < plan.connections) {
      const index = next++
      const client = await connect(plan.port, plan.path)
      await client.request('$subscribe', { topic: `room:bench-${index % plan.rooms}`, ...(plan.presence ? { presence: true } : {}) })
      opened++
    }
  }))
  return { opened, seconds: (performance.now() - startedAt) / 1000 }
}

const plan = JSON.parse(process.argv[2] ?? '{}') as PresencePlan
const result = plan.job === 'join' ? await join(plan) : plan.job === 'read' ? await read(plan) : await subscribe(plan)
process.send?.(result)
process.on('disconnect', () => {
  for (const socket of sockets) socket.destroy()
  process.exit(0)
})
