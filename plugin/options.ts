import type { Broker } from './broker/broker.js'
import { DEFAULTS } from './defaults.js'
import { FRT_ERR_INVALID_OPTION } from './errors.js'

/** Options of the plugin; each default is in `DEFAULTS` and the README. */
export interface RealtimeOptions {
  /** Where topics live; a `MemoryBroker` (single node) when omitted. */
  broker?: Broker
  /** Largest frame in bytes; larger ones close the connection with 1009. */
  maxPayload?: number
  /** Protocol ping interval in ms; a peer that missed the last pong is terminated. 0 disables. */
  heartbeatMs?: number
  /** Per-connection message budget per second; routes may override it. 0 disables. */
  messagesPerSecond?: number
  /** Deepest JSON nesting accepted in a frame. */
  maxNestingDepth?: number
  /** Topics one connection may hold at once. */
  maxSubscriptionsPerConnection?: number
  /** Negotiate permessage-deflate (off by default: it costs CPU and memory per socket). */
  perMessageDeflate?: boolean
  /** Serve `/health/live` and `/health/ready` (default true). */
  healthRoutes?: boolean
}

export interface ResolvedOptions {
  maxPayload: number
  heartbeatMs: number
  messagesPerSecond: number
  maxNestingDepth: number
  maxSubscriptionsPerConnection: number
  perMessageDeflate: boolean
  healthRoutes: boolean
}

/** Applies defaults and refuses, at register time, any value the plugin could not honour. */
export function resolveOptions (options: RealtimeOptions): ResolvedOptions {
  return {
    maxPayload: integerOption('maxPayload', options.maxPayload ?? DEFAULTS.maxPayload, 1),
    heartbeatMs: integerOption('heartbeatMs', options.heartbeatMs ?? DEFAULTS.heartbeatMs, 0),
    messagesPerSecond: numberOption('messagesPerSecond', options.messagesPerSecond ?? DEFAULTS.messagesPerSecond),
    maxNestingDepth: integerOption('maxNestingDepth', options.maxNestingDepth ?? DEFAULTS.maxNestingDepth, 1),
    maxSubscriptionsPerConnection: integerOption('maxSubscriptionsPerConnection', options.maxSubscriptionsPerConnection ?? DEFAULTS.maxSubscriptionsPerConnection, 0),
    perMessageDeflate: booleanOption('perMessageDeflate', options.perMessageDeflate ?? false),
    healthRoutes: booleanOption('healthRoutes', options.healthRoutes ?? true)
  }
}

function integerOption (name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

function numberOption (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected a number >= 0, got ${String(value)}`)
  }
  return value
}

function booleanOption (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new FRT_ERR_INVALID_OPTION(name, `expected true or false, got ${String(value)}`)
  return value
}
