/* The servers the comparisons put side by side, by the name the tables use. */
import { tracing, type Peer } from './harness.js'

export const RAW_WS: Peer = { label: 'raw ws', kind: 'ws' }
export const BARE: Peer = { label: 'bare @fastify/websocket', kind: 'bare' }
export const HANDWRITTEN: Peer = { label: '@fastify/websocket + hand-written JSON + TypeBox', kind: 'handwritten' }
export const SOCKET_IO: Peer = { label: 'Socket.IO 4 (websocket transport)', kind: 'socketio' }
/** The example app: validation, message budget, upgrade rate limit, caps, heartbeats, metrics. */
export const PLUGIN: Peer = { label: 'fastify-realtime, full pipeline + metrics', kind: 'plugin' }

export function tracedPlugin (otlpEndpoint: string): Peer {
  return { label: 'fastify-realtime, full pipeline + metrics + tracing at 0.01', kind: 'plugin', options: tracing(otlpEndpoint, '0.01') }
}
