import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Broker } from './broker/broker.js'
import type { Connection } from './connection/connection.js'
import { ClientBudgets } from './messages/client-budgets.js'
import type { CompiledRoute } from './messages/compile.js'
import type { DispatchEnvironment } from './messages/dispatch.js'
import { createPingCommand } from './messages/ping-command.js'
import { createRefreshCommand } from './messages/refresh-command.js'
import type { ResolvedOptions } from './options.js'
import type { RealtimeMetrics, RouteMetrics } from './telemetry/metrics.js'
import { createTopicCommands } from './topics/commands.js'
import { TopicHub } from './topics/hub.js'
import { createPresenceCommand } from './presence/commands.js'
import { PresenceHub } from './presence/hub.js'
import { FleetActions } from './fleet/actions.js'
import { membershipFor } from './presence/membership.js'
import { MAX_PRESENCE_LIMIT } from './protocol/frames.js'
import { createPublisher, type Publish } from './topics/publish.js'
import type { Identity } from './types.js'

/** A declared route as this instance serves it: the declaration, its open connections, its metrics. */
export interface ServedRoute {
  readonly declared: CompiledRoute
  readonly connections: Set<Connection>
  readonly metrics: RouteMetrics
  /** Reached from a connection without a closure per socket. */
  readonly instance: RealtimeInstance
}

/** What every route and connection of one plugin instance shares. */
export interface RealtimeInstance {
  readonly options: ResolvedOptions
  readonly broker: Broker
  readonly hub: TopicHub
  readonly presence: PresenceHub
  readonly metrics: RealtimeMetrics
  readonly dispatch: DispatchEnvironment
  readonly connections: Set<Connection>
  /** Open connections by identity id, for actions on a user. */
  readonly users: Map<string, Set<Connection>>
  readonly fleet: FleetActions
  /** Message budgets shared by each client's connections on this node. */
  readonly clientBudgets: ClientBudgets
  readonly routes: ServedRoute[]
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
  readonly publish: Publish
}

export function createInstance (options: ResolvedOptions, broker: Broker, metrics: RealtimeMetrics, log: FastifyBaseLogger): RealtimeInstance {
  const presence = new PresenceHub(broker, log, metrics, options.presenceWindowMs)
  const hub = new TopicHub(broker, log, (entry) => {
    if (entry.publishedAt !== undefined) metrics.brokerDelivered(broker.name, Math.max(0, Date.now() - entry.publishedAt) / 1000)
  }, (connection, topic, subscription) => subscription.presence?.exit(presence, connection, topic))
  const publish = createPublisher(broker, metrics)
  const users = new Map<string, Set<Connection>>()
  return {
    options,
    broker,
    hub,
    presence,
    metrics,
    dispatch: {
      maxNestingDepth: options.maxNestingDepth,
      traceSampleRatio: options.traceSampleRatio,
      once: { broker, leaseMs: options.idempotencyLeaseMs, ttlMs: options.idempotencyTtlMs },
      commands: new Map([
        ...createTopicCommands(hub, {
          hub: presence,
          membershipFor,
          snapshot: async (topic) => await presence.replyBody(topic, MAX_PRESENCE_LIMIT)
        }, options.maxSubscriptionsPerConnection),
        ['$presence', createPresenceCommand(presence)],
        ['$refresh', createRefreshCommand(options.authenticate, metrics)],
        ['$ping', createPingCommand()]
      ]),
      publish
    },
    connections: new Set(),
    users,
    fleet: new FleetActions(broker, (user) => users.get(user), metrics, log),
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
