/*
 * What each benchmarked server speaks on the wire, so one load generator drives them all: where
 * to connect, what to send after the handshake, how many frames arrive before the first answer,
 * and the echo, subscribe and publish frames.
 */
import type { ServerKind } from './servers.js'

export interface Wire {
  path: string
  /** Frames the client sends right after the handshake. */
  greeting: string[]
  /** Frames the server sends on its own before any answer ($welcome; Socket.IO's open and connect). */
  welcomeFrames: number
  echo: string
  subscribe: string
  /** Frames the server answers a subscribe with. */
  subscribeAckFrames: number
  /** A publish frame; `marker` travels unchanged to every subscriber. */
  publishTemplate: string
}

/** Stands for the publish time inside a publish frame: `@<microseconds>@`. */
export const MARKER = '@MARK@'
export const MARKER_PATTERN = /@(\d+)@/g

const REALTIME: Wire = {
  path: '/ws',
  greeting: [],
  welcomeFrames: 1,
  echo: '{"type":"echo","id":1,"data":{"text":"hello, benchmark"}}',
  subscribe: '{"type":"$subscribe","id":1,"data":{"topic":"room:bench"}}',
  subscribeAckFrames: 1,
  publishTemplate: `{"type":"say","data":{"room":"bench","text":"${MARKER}"}}`
}

/** ws and bare @fastify/websocket: the same echo bytes; `s…` subscribes, `p…` is broadcast as is. */
const PLAIN: Wire = {
  ...REALTIME,
  welcomeFrames: 0,
  subscribe: 'subscribe',
  subscribeAckFrames: 0,
  publishTemplate: `p{"room":"bench","text":"${MARKER}"}`
}

const SOCKET_IO: Wire = {
  path: '/socket.io/?EIO=4&transport=websocket',
  // Engine.IO's `0{…}` open packet comes unasked; `40` joins the main namespace, answered by `40{…}`.
  greeting: ['40'],
  welcomeFrames: 2,
  echo: '42["echo",{"text":"hello, benchmark"}]',
  subscribe: '42["join"]',
  subscribeAckFrames: 0,
  publishTemplate: `42["say",{"room":"bench","text":"${MARKER}"}]`
}

export function wireOf (kind: ServerKind): Wire {
  if (kind === 'socketio') return SOCKET_IO
  if (kind === 'ws' || kind === 'bare') return PLAIN
  if (kind === 'handwritten') return { ...REALTIME, welcomeFrames: 0 }
  return REALTIME
}

export function isSubscribe (frame: Buffer): boolean {
  return frame[0] === 0x73
}

export function isPublish (frame: Buffer): boolean {
  return frame[0] === 0x70
}
