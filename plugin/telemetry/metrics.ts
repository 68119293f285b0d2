import promClient, { type Counter, type Gauge, type Histogram, type Registry } from 'prom-client'
import { closeCodeEntry } from '../protocol/codes.js'
import { SeriesHistogram, type HistogramSeries } from './series-histogram.js'

/** The prom-client module: fastify-metrics hands over its own, so metrics land in its registry. */
export type PromClient = typeof promClient

/** Where the plugin's `ws_*` metrics go. */
export interface MetricsOptions {
  /** Defaults to fastify-metrics' registry when it is registered first, else a new Registry. */
  registry?: Registry
  /** The prom-client module that built `registry`, when it is not this package's copy. */
  client?: PromClient
}

/** Why an upgrade was refused, as the `reason` label. */
export type RejectionReason = 'draining' | 'capacity' | 'subprotocol' | 'origin' | 'unauthorized' | 'rate_limited'

/** Why a TCP socket was closed before it sent a request, as the `reason` label. */
export type SocketRefusalReason = 'capacity' | 'evicted' | 'headers_timeout'

const SOCKET_REFUSAL_REASONS: SocketRefusalReason[] = ['capacity', 'evicted', 'headers_timeout']

const MESSAGE_SECONDS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
const DELIVERY_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5]
const CONNECTION_SECONDS = [1, 5, 15, 60, 300, 900, 3600, 14400, 86400]

/**
 * Close codes a client may choose freely become their range, so a client cannot mint label
 * values: the close-code table's codes (and RFC 6455's own 1000–1015) stay themselves.
 */
export function closeCodeLabel (code: number): string {
  if (closeCodeEntry(code) !== undefined || (code >= 1000 && code <= 1015)) return String(code)
  if (code >= 3000 && code <= 4999) return `${Math.floor(code / 1000)}xxx`
  return 'other'
}

interface Instruments {
  connectionsActive: Gauge<'route'>
  connectionsTotal: Counter<'route'>
  connectionsRejected: Counter<'route' | 'reason'>
  disconnections: Counter<'route' | 'code'>
  connectionDuration: Histogram<'route'>
  messagesReceived: Counter<'route' | 'type'>
  messagesSent: Counter<'route' | 'type'>
  messageBytes: Counter<'route' | 'direction'>
  messageDuration: SeriesHistogram
  messageErrors: Counter<'route' | 'type' | 'code'>
  rateLimited: Counter<'route' | 'scope'>
  slowConsumerCloses: Counter<'route'>
  protocolErrors: Counter<'route' | 'reason'>
  idempotentReplays: Counter<'route' | 'type'>
  bufferedBytes: Gauge<'route'>
  brokerPublish: Counter<'broker' | 'outcome'>
  brokerDelivery: SeriesHistogram
}

/** What the broker gauges read when Prometheus scrapes. */
export interface BrokerHealth {
  readonly name: string
  readonly healthy: boolean
  /** Estimated bytes of history held in this process; absent for a broker whose history lives elsewhere. */
  readonly historyBytes?: number
  /** Entries of history held in this process; absent likewise. */
  readonly historyEntries?: number
}

/** Counters bound to one route; label children are cached so a message costs no label lookup. */
export interface RouteMetrics {
  connectionOpened: () => void
  connectionClosed: (code: number, durationSeconds: number) => void
  connectionRejected: (reason: RejectionReason) => void
  frameReceived: (type: string, bytes: number) => void
  frameSent: (type: string, bytes: number) => void
  messageHandled: (type: string, outcome: string, seconds: number) => void
  messageError: (type: string, code: string) => void
  rateLimited: (scope: RateLimitScope) => void
  slowConsumerClosed: () => void
  /** A connection closed for breaking the protocol: a ws frame error code, `PING_FLOOD` or `MESSAGE_TIMEOUT`. */
  protocolError: (reason: string) => void
  /** A message with an idempotency key answered from a finished run, its handler not run again. */
  idempotentReplayed: (type: string) => void
}

/** Which budget refused: a connection's messages, its client's (identity or address), or upgrades. */
export type RateLimitScope = 'message' | 'client' | 'upgrade'

/** The plugin's metrics, or nothing at all when they are turned off. */
export interface RealtimeMetrics {
  readonly registry: Registry | undefined
  forRoute: (route: string) => RouteMetrics
  brokerPublished: (broker: string, outcome: 'ok' | 'error') => void
  /** Time from a publish, on any node, to its delivery on this one. */
  brokerDelivered: (broker: string, seconds: number) => void
  /** Reports the broker's health as `ws_broker_up` (and its held history, when it has one), read when Prometheus scrapes. */
  trackBroker: (broker: BrokerHealth) => void
  /** Reports outgoing buffered bytes per route, read when Prometheus scrapes. */
  trackBufferedBytes: (read: () => Map<string, number>) => void
  /** A socket refused or dropped before its first request (`maxSockets`, `headersTimeoutMs`). */
  socketRefused: (reason: SocketRefusalReason) => void
  /** Reports the presence entries this node's connections hold, read when Prometheus scrapes. */
  trackPresence: (read: () => number) => void
  /** Joins and leaves this node sent its presence watchers, each counted once however many watch. */
  presenceChanged: (joins: number, leaves: number) => void
  /** A user action this node started (`disconnectUser`, `sendToUser`), once however many nodes it reaches. */
  userAction: (action: 'disconnect' | 'send') => void
  /** Connections of this node a user action, started on any node, acted on. */
  userActionApplied: (action: 'disconnect' | 'send', connections: number) => void
  /** A `$refresh`: the connection took fresh credentials (`ok`), or they were refused. */
  credentialsRefreshed: (outcome: 'ok' | 'refused') => void
  /** Stops reporting this instance (its counts so far stay): call when it closes. */
  release: () => void
}

const noop = (): void => {}
const NOOP_ROUTE: RouteMetrics = {
  connectionOpened: noop,
  connectionClosed: noop,
  connectionRejected: noop,
  frameReceived: noop,
  frameSent: noop,
  messageHandled: noop,
  messageError: noop,
  rateLimited: noop,
  slowConsumerClosed: noop,
  protocolError: noop,
  idempotentReplayed: noop
}
export const NOOP_METRICS: RealtimeMetrics = {
  registry: undefined,
  forRoute: () => NOOP_ROUTE,
  brokerPublished: noop,
  brokerDelivered: noop,
  trackBroker: noop,
  trackBufferedBytes: noop,
  socketRefused: noop,
  trackPresence: noop,
  presenceChanged: noop,
  userAction: noop,
  userActionApplied: noop,
  credentialsRefreshed: noop,
  release: noop
}

/*
 * What a metric reads when Prometheus collects, by metric: per-frame counts kept in plain
 * numbers (prom-client's `inc` hashes the label set on every call, a measurable share of a
 * frame's cost) and the scrape-time gauges. Every plugin instance sharing a registry adds its
 * own and removes them when it closes, so each reports its routes and broker, and a closed one
 * leaves nothing behind.
 */
type Collector = () => void
const collectorsByMetric = new WeakMap<object, Set<Collector>>()

function collectorsOf (metric: object): Set<Collector> {
  let collectors = collectorsByMetric.get(metric)
  if (collectors === undefined) {
    collectors = new Set()
    collectorsByMetric.set(metric, collectors)
  }
  return collectors
}

function runCollectors (this: object): void {
  for (const collect of collectorsByMetric.get(this) ?? []) collect()
}

/** A gauge read at scrape time starts empty each time: series of closed instances disappear. */
function runGaugeCollectors (this: { reset: () => void }): void {
  this.reset()
  runCollectors.call(this)
}

/**
 * Registers the `ws_*` metrics of DESIGN.md in `registry`, reusing any already there (a second
 * plugin instance, or a registry fastify-metrics cleared and refilled).
 */
export function createMetrics (client: PromClient, registry: Registry): RealtimeMetrics {
  const added: Array<[object, Collector]> = []
  const addCollector = (metric: object, collect: Collector): void => {
    collectorsOf(metric).add(collect)
    added.push([metric, collect])
  }
  function metric<T> (name: string, create: () => T): T {
    return (registry.getSingleMetric(name) as T | undefined) ?? create()
  }
  const registers = [registry]
  const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    metric(name, () => new client.Counter({ name, help, labelNames, registers }))
  const batchedCounter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    metric(name, () => {
      return new client.Counter({ name, help, labelNames, registers, collect: runCollectors })
    })
  const seriesHistogram = (name: string, help: string, buckets: number[]): SeriesHistogram => {
    // By shape, not class: another copy of this package may have registered it.
    const existing = registry.getSingleMetric(name) as unknown as SeriesHistogram | undefined
    if (typeof existing?.series === 'function') return existing
    return new SeriesHistogram(name, help, buckets, registry)
  }
  const histogram = <L extends string>(name: string, help: string, labelNames: L[], buckets: number[]): Histogram<L> =>
    metric(name, () => new client.Histogram({ name, help, labelNames, buckets, registers }))

  const instruments: Instruments = {
    connectionsActive: metric('ws_connections_active', () => new client.Gauge({ name: 'ws_connections_active', help: 'Open WebSocket connections', labelNames: ['route'], registers })),
    connectionsTotal: counter('ws_connections_total', 'WebSocket connections opened', ['route']),
    connectionsRejected: counter('ws_connections_rejected_total', 'WebSocket upgrades refused before the handshake', ['route', 'reason']),
    disconnections: counter('ws_disconnections_total', 'WebSocket connections closed, by close code', ['route', 'code']),
    connectionDuration: histogram('ws_connection_duration_seconds', 'How long WebSocket connections stayed open', ['route'], CONNECTION_SECONDS),
    messagesReceived: batchedCounter('ws_messages_received_total', 'Frames received, valid or not', ['route', 'type']),
    messagesSent: batchedCounter('ws_messages_sent_total', 'Frames sent', ['route', 'type']),
    messageBytes: batchedCounter('ws_message_bytes_total', 'Frame payload bytes', ['route', 'direction']),
    messageDuration: seriesHistogram('ws_message_duration_seconds', 'Time from a message\'s arrival to its answer', MESSAGE_SECONDS),
    messageErrors: counter('ws_message_errors_total', 'Error frames sent, by code', ['route', 'type', 'code']),
    rateLimited: counter('ws_rate_limited_total', 'Messages and upgrades refused by a rate limit', ['route', 'scope']),
    slowConsumerCloses: counter('ws_slow_consumer_closes_total', 'Connections closed because their outgoing buffer overflowed', ['route']),
    idempotentReplays: counter('ws_idempotent_replays_total', 'Messages with an idempotency key answered from an earlier run, their handler not run again', ['route', 'type']),
    protocolErrors: counter('ws_protocol_errors_total', 'Connections closed for breaking the WebSocket protocol or its limits, by reason', ['route', 'reason']),
    bufferedBytes: metric('ws_buffered_bytes', () => new client.Gauge({
      name: 'ws_buffered_bytes',
      help: 'Bytes waiting to be written to WebSocket peers',
      labelNames: ['route'],
      registers,
      collect: runGaugeCollectors
    })),
    brokerPublish: counter('ws_broker_publish_total', 'Publishes handed to the broker, by outcome', ['broker', 'outcome']),
    brokerDelivery: seriesHistogram('ws_broker_delivery_seconds', 'Time from a publish on any node to its delivery on this one', DELIVERY_SECONDS)
  }
  const brokerUp = metric('ws_broker_up', () => new client.Gauge({
    name: 'ws_broker_up',
    help: 'Whether the broker is reachable (1) or not (0)',
    labelNames: ['broker'],
    registers,
    collect: runGaugeCollectors
  }))
  const historyGauge = (name: string, help: string): Gauge<'broker'> =>
    metric(name, () => new client.Gauge({ name, help, labelNames: ['broker'], registers, collect: runGaugeCollectors }))
  const historyBytes = historyGauge('ws_broker_history_bytes', 'Estimated heap bytes of topic history the broker holds in this process')
  const historyEntries = historyGauge('ws_broker_history_entries', 'Entries of topic history the broker holds in this process')
  const presenceMembers = metric('ws_presence_members', () => new client.Gauge({
    name: 'ws_presence_members',
    help: 'Presence entries held by this node\'s connections, across topics',
    registers,
    collect: runGaugeCollectors
  }))
  const presenceChanges = counter('ws_presence_changes_total', 'Presence joins and leaves sent to this node\'s watchers, once per change', ['change'])
  const presenceJoins = presenceChanges.labels('join')
  const presenceLeaves = presenceChanges.labels('leave')
  presenceJoins.inc(0)
  presenceLeaves.inc(0)
  const userActions = counter('ws_user_actions_total', 'User actions this node started, by action', ['action'])
  const userActionConnections = counter('ws_user_action_connections_total', 'Connections of this node that user actions from any node acted on, by action', ['action'])
  for (const action of ['disconnect', 'send']) {
    userActions.labels(action).inc(0)
    userActionConnections.labels(action).inc(0)
  }
  const refreshes = counter('ws_credential_refreshes_total', 'In-band credential refreshes ($refresh), by outcome', ['outcome'])
  for (const outcome of ['ok', 'refused']) refreshes.labels(outcome).inc(0)
  const socketsRefused = counter('ws_sockets_refused_total', 'TCP sockets refused or dropped before their first request, by reason', ['reason'])
  // Children bound once (and read 0 from the start); a flood refuses thousands per second.
  const refusedByReason = new Map(SOCKET_REFUSAL_REASONS.map((reason) => {
    const child = socketsRefused.labels(reason)
    child.inc(0)
    return [reason, child]
  }))

  // Per publish and per delivered entry: each label set is looked up once, not hashed per call.
  const publishes = new Map<string, { inc: () => void }>()
  const deliveries = new Map<string, HistogramSeries>()
  return {
    registry,
    forRoute: (route) => routeMetrics(instruments, route, addCollector),
    brokerPublished: (broker, outcome) => {
      const key = `${broker}\0${outcome}`
      let child = publishes.get(key)
      if (child === undefined) {
        child = instruments.brokerPublish.labels(broker, outcome)
        publishes.set(key, child)
      }
      child.inc()
    },
    brokerDelivered: (broker, seconds) => {
      let series = deliveries.get(broker)
      if (series === undefined) {
        series = instruments.brokerDelivery.series({ broker })
        deliveries.set(broker, series)
      }
      series.observe(seconds)
    },
    trackBroker: (broker) => {
      addCollector(brokerUp, () => brokerUp.set({ broker: broker.name }, broker.healthy ? 1 : 0))
      // Read at scrape time, like health: a series only for a broker that holds history itself.
      addCollector(historyBytes, () => {
        if (broker.historyBytes !== undefined) historyBytes.set({ broker: broker.name }, broker.historyBytes)
      })
      addCollector(historyEntries, () => {
        if (broker.historyEntries !== undefined) historyEntries.set({ broker: broker.name }, broker.historyEntries)
      })
    },
    trackBufferedBytes: (read) => {
      addCollector(instruments.bufferedBytes, () => {
        for (const [route, bytes] of read()) instruments.bufferedBytes.set({ route }, bytes)
      })
    },
    socketRefused: (reason) => refusedByReason.get(reason)?.inc(),
    trackPresence: (read) => {
      // Summed over every plugin instance sharing the registry.
      addCollector(presenceMembers, () => presenceMembers.inc(read()))
    },
    userAction: (action) => userActions.labels(action).inc(),
    credentialsRefreshed: (outcome) => refreshes.labels(outcome).inc(),
    userActionApplied: (action, connections) => userActionConnections.labels(action).inc(connections),
    presenceChanged: (joins, leaves) => {
      if (joins > 0) presenceJoins.inc(joins)
      if (leaves > 0) presenceLeaves.inc(leaves)
    },
    release: () => {
      // Counts not yet handed over are handed over now, then nothing here is read again.
      for (const [metric, collect] of added) {
        collect()
        collectorsByMetric.get(metric)?.delete(collect)
      }
      added.length = 0
    }
  }
}

function routeMetrics (m: Instruments, route: string, addCollector: (metric: object, collect: Collector) => void): RouteMetrics {
  const cache = new Map<string, { inc: (value?: number) => void }>()
  const histograms = new Map<string, HistogramSeries>()
  function cached<T extends { inc: (value?: number) => void }> (key: string, create: () => T): T {
    let child = cache.get(key)
    if (child === undefined) {
      child = create()
      cache.set(key, child)
    }
    return child as T
  }
  const active = m.connectionsActive.labels(route)
  const opened = m.connectionsTotal.labels(route)
  const duration = m.connectionDuration.labels(route)
  const slow = m.slowConsumerCloses.labels(route)
  // Series that exist from the start read 0 rather than nothing: rates and alerts need no `or`.
  slow.inc(0)
  for (const scope of ['message', 'client', 'upgrade']) m.rateLimited.labels(route, scope).inc(0)
  const received = new Map<string, number>()
  const sent = new Map<string, number>()
  let bytesIn = 0
  let bytesOut = 0
  addCollector(m.messagesReceived, () => {
    for (const [type, count] of received) m.messagesReceived.inc({ route, type }, count)
    received.clear()
  })
  addCollector(m.messagesSent, () => {
    for (const [type, count] of sent) m.messagesSent.inc({ route, type }, count)
    sent.clear()
  })
  addCollector(m.messageBytes, () => {
    if (bytesIn > 0) m.messageBytes.inc({ route, direction: 'in' }, bytesIn)
    if (bytesOut > 0) m.messageBytes.inc({ route, direction: 'out' }, bytesOut)
    bytesIn = 0
    bytesOut = 0
  })
  return {
    connectionOpened () {
      active.inc()
      opened.inc()
    },
    connectionClosed (code, durationSeconds) {
      active.dec()
      cached(`close\0${code}`, () => m.disconnections.labels(route, closeCodeLabel(code))).inc()
      duration.observe(durationSeconds)
    },
    connectionRejected: (reason) => cached(`reject\0${reason}`, () => m.connectionsRejected.labels(route, reason)).inc(),
    frameReceived (type, bytes) {
      received.set(type, (received.get(type) ?? 0) + 1)
      bytesIn += bytes
    },
    frameSent (type, bytes) {
      sent.set(type, (sent.get(type) ?? 0) + 1)
      bytesOut += bytes
    },
    messageHandled (type, outcome, seconds) {
      const key = `${type}\0${outcome}`
      let child = histograms.get(key)
      if (child === undefined) {
        child = m.messageDuration.series({ route, type, outcome })
        histograms.set(key, child)
      }
      child.observe(seconds)
    },
    messageError: (type, code) => cached(`error\0${type}\0${code}`, () => m.messageErrors.labels(route, type, code)).inc(),
    rateLimited: (scope) => cached(`limited\0${scope}`, () => m.rateLimited.labels(route, scope)).inc(),
    slowConsumerClosed: () => slow.inc(),
    protocolError: (reason) => cached(`protocol\0${reason}`, () => m.protocolErrors.labels(route, reason)).inc(),
    idempotentReplayed: (type) => cached(`replayed\0${type}`, () => m.idempotentReplays.labels(route, type)).inc()
  }
}
