import type { FastifyRequest } from 'fastify'
import type { AsyncApiOptions } from './asyncapi/document.js'
import type { Broker } from './broker/broker.js'
import { DEFAULTS } from './defaults.js'
import { FRT_ERR_INVALID_OPTION } from './errors.js'
import type { MetricsOptions } from './telemetry/metrics.js'
import type { Identity } from './types.js'

/**
 * Decides who is connecting, before the upgrade. `token` is the credential the request carried
 * (`Authorization: Bearer`, a `bearer.<token>` subprotocol entry, or `?token=`). Return the
 * identity, or nothing (or throw) to refuse with 401.
 */
export type Authenticate = (request: FastifyRequest, token: string | undefined) => Identity | undefined | null | Promise<Identity | undefined | null>

/** Options of the plugin; each default is in `DEFAULTS` and the README. */
export interface RealtimeOptions {
  /** Where topics live; a `MemoryBroker` (single node) when omitted. */
  broker?: Broker
  /** Largest frame in bytes; larger ones close the connection with 1009. */
  maxPayload?: number
  /** Protocol ping interval in ms; a peer that missed the last pong is terminated. 0 disables. */
  heartbeatMs?: number
  /** Close with 4000 a connection that sent no message for this long. 0 disables. */
  idleTimeoutMs?: number
  /** Open connections per node; upgrades beyond get 503 with `Retry-After`. 0 means no cap. */
  maxConnections?: number
  /** Outgoing bytes one peer may have waiting before it is closed with 4001. */
  maxBufferedBytes?: number
  /** Upgrades per client IP per minute (`@fastify/rate-limit`; `trustProxy` decides the IP). 0 disables. */
  upgradeRateLimit?: number
  /** How long a TCP socket may take to send its first request head before it is destroyed. 0 disables. */
  headersTimeoutMs?: number
  /**
   * Open TCP sockets per process; beyond, a socket that sent no request yet is evicted, or the
   * newcomer refused. Default: the open-files limit less a headroom. 0 means no cap.
   */
  maxSockets?: number
  /** Per-connection message budget per second; routes and message types may override it. 0 disables. */
  messagesPerSecond?: number
  /** Messages per second shared by all connections of one identity on this node. 0 disables. */
  identityMessagesPerSecond?: number
  /** Messages per second shared by all anonymous connections from one client address on this node. 0 disables. */
  addressMessagesPerSecond?: number
  /** `Origin` values allowed to connect, exactly; unset allows same-origin and Origin-less clients. */
  allowedOrigins?: string[]
  /** Authenticates upgrades; without it every client is anonymous. */
  authenticate?: Authenticate
  /** How long a drain spreads its 1012 closes and waits before terminating stragglers. */
  drainMs?: number
  /** Deepest JSON nesting accepted in a frame. */
  maxNestingDepth?: number
  /** Fragments one message may arrive in; more close the connection with 1008. */
  maxFragments?: number
  /** How long a message begun in fragments may take to complete before the connection closes with 1008. 0 disables. */
  incompleteMessageTimeoutMs?: number
  /** Topics one connection may hold at once. */
  maxSubscriptionsPerConnection?: number
  /** Presence changes of a topic reach its watchers at most once per this window, coalesced (default 100 ms). */
  presenceWindowMs?: number
  /** How long the answer of a message sent with an idempotency key is kept for its retries (default 10 min). */
  idempotencyTtlMs?: number
  /** How long a run of such a message holds its key without renewing it: after it, a retry may run it again (default 5 s). */
  idempotencyLeaseMs?: number
  /** Negotiate permessage-deflate (off by default: it costs CPU and memory per socket). */
  perMessageDeflate?: boolean
  /** Serve `/health/live` and `/health/ready` (default true). */
  healthRoutes?: boolean
  /**
   * The share of messages without a `traceparent` that start a span (0–1). Below 1 the plugin
   * samples these roots itself, cheaply, and gives the SDK only those it keeps: put
   * `realtimeSampler` in front of the SDK's sampler so that it keeps them. Messages with a
   * `traceparent` always start one, for the SDK's sampler to decide.
   */
  traceSampleRatio?: number
  /** Where `ws_*` metrics go, or `false` for none (default: fastify-metrics' registry, else a new one). */
  metrics?: MetricsOptions | false
  /**
   * The AsyncAPI 3.0 document of the declared routes, served at `/asyncapi.json` and
   * `/asyncapi.yaml`; `false` serves neither (`app.realtime.asyncApi()` still builds it).
   */
  asyncapi?: AsyncApiOptions | false
}

export interface ResolvedOptions {
  maxPayload: number
  heartbeatMs: number
  idleTimeoutMs: number
  maxConnections: number
  maxBufferedBytes: number
  upgradeRateLimit: number
  headersTimeoutMs: number
  /** Undefined: derived from the open-files limit when the plugin registers. */
  maxSockets: number | undefined
  messagesPerSecond: number
  identityMessagesPerSecond: number
  addressMessagesPerSecond: number
  allowedOrigins: Set<string> | undefined
  authenticate: Authenticate | undefined
  drainMs: number
  maxNestingDepth: number
  maxFragments: number
  incompleteMessageTimeoutMs: number
  maxSubscriptionsPerConnection: number
  presenceWindowMs: number
  idempotencyTtlMs: number
  idempotencyLeaseMs: number
  perMessageDeflate: boolean
  traceSampleRatio: number
  healthRoutes: boolean
  asyncapi: AsyncApiOptions | false
}

/** Applies defaults and refuses, at register time, any value the plugin could not honour. */
export function resolveOptions (options: RealtimeOptions): ResolvedOptions {
  const integer = (name: keyof typeof DEFAULTS & keyof RealtimeOptions, min: number): number =>
    integerOption(name, options[name] ?? DEFAULTS[name], min)
  if (options.authenticate !== undefined && typeof options.authenticate !== 'function') {
    throw new FRT_ERR_INVALID_OPTION('authenticate', `expected a function, got ${typeof options.authenticate}`)
  }
  return {
    maxPayload: integer('maxPayload', 1),
    heartbeatMs: integer('heartbeatMs', 0),
    idleTimeoutMs: integer('idleTimeoutMs', 0),
    maxConnections: integer('maxConnections', 0),
    maxBufferedBytes: integer('maxBufferedBytes', 1),
    upgradeRateLimit: integer('upgradeRateLimit', 0),
    headersTimeoutMs: integer('headersTimeoutMs', 0),
    maxSockets: options.maxSockets === undefined ? undefined : integerOption('maxSockets', options.maxSockets, 0),
    messagesPerSecond: numberOption('messagesPerSecond', options.messagesPerSecond ?? DEFAULTS.messagesPerSecond),
    identityMessagesPerSecond: numberOption('identityMessagesPerSecond', options.identityMessagesPerSecond ?? DEFAULTS.identityMessagesPerSecond),
    addressMessagesPerSecond: numberOption('addressMessagesPerSecond', options.addressMessagesPerSecond ?? DEFAULTS.addressMessagesPerSecond),
    allowedOrigins: originsOption(options.allowedOrigins),
    authenticate: options.authenticate,
    drainMs: integer('drainMs', 0),
    maxNestingDepth: integer('maxNestingDepth', 1),
    maxFragments: integer('maxFragments', 1),
    incompleteMessageTimeoutMs: integer('incompleteMessageTimeoutMs', 0),
    maxSubscriptionsPerConnection: integer('maxSubscriptionsPerConnection', 0),
    presenceWindowMs: integer('presenceWindowMs', 1),
    idempotencyTtlMs: integer('idempotencyTtlMs', 1),
    idempotencyLeaseMs: integer('idempotencyLeaseMs', 30),
    perMessageDeflate: booleanOption('perMessageDeflate', options.perMessageDeflate ?? false),
    traceSampleRatio: ratioOption('traceSampleRatio', options.traceSampleRatio ?? DEFAULTS.traceSampleRatio),
    healthRoutes: booleanOption('healthRoutes', options.healthRoutes ?? true),
    asyncapi: asyncApiOption(options.asyncapi)
  }
}

function integerOption (name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

export function numberOption (name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected a number >= 0, got ${String(value)}`)
  }
  return value
}

function ratioOption (name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected a number from 0 to 1, got ${String(value)}`)
  }
  return value
}

function booleanOption (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new FRT_ERR_INVALID_OPTION(name, `expected true or false, got ${String(value)}`)
  return value
}

function originsOption (value: unknown): Set<string> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((origin) => typeof origin === 'string' && /^https?:\/\/[^/\s]+$/.test(origin))) {
    throw new FRT_ERR_INVALID_OPTION('allowedOrigins', `expected origins such as "https://example.com" (scheme and host, no path), got ${JSON.stringify(value)}`)
  }
  return new Set(value)
}

function asyncApiOption (value: unknown): AsyncApiOptions | false {
  if (value === undefined) return {}
  if (value === false) return false
  return checkAsyncApiOptions(value)
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** Refuses AsyncAPI options the document could not be built from; also checks `asyncApi()`'s. */
export function checkAsyncApiOptions (value: unknown): AsyncApiOptions {
  const refuse = (why: string): never => { throw new FRT_ERR_INVALID_OPTION('asyncapi', why) }
  if (!isPlainObject(value)) refuse(`expected false or { info?, servers? }, got ${JSON.stringify(value)}`)
  const { info, servers } = value as Record<string, unknown>
  if (info !== undefined) {
    if (!isPlainObject(info)) refuse(`info must be an object, got ${JSON.stringify(info)}`)
    for (const field of ['title', 'version', 'description']) {
      const text = (info as Record<string, unknown>)[field]
      if (text !== undefined && (typeof text !== 'string' || text === '')) refuse(`info.${field} must be a non-empty string`)
    }
  }
  if (servers !== undefined) {
    if (!isPlainObject(servers)) refuse(`servers must be an object of named servers, got ${JSON.stringify(servers)}`)
    for (const [name, server] of Object.entries(servers as Record<string, unknown>)) {
      const { host, protocol } = isPlainObject(server) ? server : {}
      if (typeof host !== 'string' || host === '' || (protocol !== 'ws' && protocol !== 'wss')) {
        refuse(`server "${name}" needs a host and a protocol of "ws" or "wss"`)
      }
    }
  }
  return value as AsyncApiOptions
}
