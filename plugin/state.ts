import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { BrokerUnavailableError, type Broker, type TopicPosition } from './broker/broker.js'
import { endSpanWithError, startPublishSpan, traceparentOf } from './telemetry/tracing.js'
import { ClientBudgets } from './client-budgets.js'
import type { Connection } from './connection.js'
import type { DispatchEnvironment } from './dispatch.js'
import { FRT_ERR_INVALID_TOPIC, FRT_ERR_UNKNOWN_EVENT } from './errors.js'
import type { ResolvedOptions } from './options.js'
import type { CompiledRoute } from './route-table.js'
import type { RealtimeMetrics } from './telemetry/metrics.js'
import { createPingCommand } from './ping-command.js'
import { createTopicCommands } from './topic-commands.js'
import { TopicHub } from './topic-hub.js'
import type { Identity } from './types.js'

/** What every route and connection of one plugin instance shares. */
export interface RealtimeState {
  readonly options: ResolvedOptions
  readonly broker: Broker
  readonly hub: TopicHub
  readonly metrics: RealtimeMetrics
  readonly dispatch: DispatchEnvironment
  readonly connections: Set<Connection>
  /** Message budgets shared by each client's connections on this node. */
  readonly clientBudgets: ClientBudgets
  readonly routes: CompiledRoute[]
  /** Identities established before the upgrade, picked up when the connection opens. */
  readonly identities: WeakMap<FastifyRequest, Identity>
  /** Upgrades admitted under `maxConnections` that are not connections yet, with the listener that frees the slot if the socket dies first. */
  readonly reservations: Map<FastifyRequest, () => void>
  pendingUpgrades: number
  /** False once draining: upgrades get 503 and readiness fails. */
  accepting: boolean
  /** True once the server is ready: routes can no longer gain message types. */
  started: boolean
  draining: Promise<void> | undefined
  publish: (route: CompiledRoute, topic: string, event: string, data: unknown) => Promise<TopicPosition>
}

const MAX_TOPIC_LENGTH = 256

export function createState (options: ResolvedOptions, broker: Broker, metrics: RealtimeMetrics, log: FastifyBaseLogger): RealtimeState {
  const hub = new TopicHub(broker, log, (entry) => {
    if (entry.publishedAt !== undefined) metrics.brokerDelivered(broker.name, Math.max(0, Date.now() - entry.publishedAt) / 1000)
  })
  const publish = async (route: CompiledRoute, topic: string, event: string, data: unknown): Promise<TopicPosition> => {
    const compiled = route.events.get(event)
    if (compiled === undefined) throw new FRT_ERR_UNKNOWN_EVENT(event, route.url)
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
      throw new FRT_ERR_INVALID_TOPIC(JSON.stringify(topic))
    }
    const span = startPublishSpan(topic, event)
    // Serialized once here; every node and socket passes on these same bytes.
    const message = { event, data: compiled.serialize(data), traceparent: traceparentOf(span), publishedAt: Date.now() }
    try {
      const position = await broker.publish(topic, message)
      metrics.brokerPublished(broker.name, 'ok')
      span.end()
      return position
    } catch (err) {
      metrics.brokerPublished(broker.name, 'error')
      endSpanWithError(span, err instanceof BrokerUnavailableError ? 'UNAVAILABLE' : 'PUBLISH_FAILED')
      throw err
    }
  }
  return {
    options,
    broker,
    hub,
    metrics,
    dispatch: {
      maxNestingDepth: options.maxNestingDepth,
      commands: new Map([...createTopicCommands(hub, options.maxSubscriptionsPerConnection), ['$ping', createPingCommand()]]),
      publish
    },
    connections: new Set(),
    clientBudgets: new ClientBudgets(options.identityMessagesPerSecond, options.addressMessagesPerSecond),
    routes: [],
    identities: new WeakMap(),
    reservations: new Map(),
    pendingUpgrades: 0,
    accepting: true,
    started: false,
    draining: undefined,
    publish
  }
}
