/**
 * The seam between routing and transport. A broker stores each topic's recent history and
 * delivers new entries to the node's listeners; it knows nothing of connections, schemas or
 * frames. The memory broker is the default; a Redis broker implements the same contract for
 * many nodes.
 */

/** What a publisher hands to the broker: an event name and its already-serialized data. */
export interface BrokerMessage {
  event: string
  /** JSON text of the event's data, serialized once by the publisher. */
  data: string
  /** W3C trace context of the publisher, so a delivery elsewhere joins its trace. */
  traceparent?: string
  /** When it was published (epoch ms), for the delivery latency metric. */
  publishedAt?: number
}

/** A message as stored in a topic's history, with the offset the broker gave it. */
export interface TopicEntry extends BrokerMessage {
  topic: string
  offset: string
}

/** Where a topic stands: its latest offset and the epoch of its history. */
export interface TopicPosition {
  offset: string
  /** Changes whenever the history was lost, so offsets of another epoch mean nothing. */
  epoch: string
}

/** The entries after an offset that the broker still holds. */
export interface TopicHistory {
  entries: TopicEntry[]
  /** True when no entry after `since` is missing from `entries`. */
  complete: boolean
  position: TopicPosition
}

/** Called for every entry published on a topic the listener subscribed to, in offset order. */
export type TopicListener = (entry: TopicEntry) => void

/** One connection's entry in a topic's presence. */
export interface PresenceEntry {
  /** The connection's id: unique, so an entry joins once and leaves once. */
  connection: string
  /** Who it belongs to: the identity's id, or the connection's own id when anonymous. */
  user: string
  /** JSON text of what the member shows of itself, serialized by the route's schema. */
  info: string
}

/** Entries that joined and left a topic's presence, in the order they happened. */
export interface PresenceDiff {
  joins: PresenceEntry[]
  leaves: PresenceEntry[]
}

/**
 * Hears every change of a topic's presence, on any node. `undefined` means changes may have
 * been missed (the broker lost its backend and is back): the listener reads `presence` again.
 */
export type PresenceListener = (diff: PresenceDiff | undefined) => void

/** Hears every fleet message (an action on a user, for every node) broadcast by any node, its own included. */
export type FleetListener = (message: string) => void

/**
 * What `claimOnce` found: the key is this caller's to run now (`token` proves it later), another
 * run holds it (its lease not run out), or a run finished and left its `answer`.
 */
export type OnceClaim = { state: 'claimed', token: string } | { state: 'running' } | { state: 'done', answer: string }

export interface Broker {
  /** Short lowercase name, used as a metric label. */
  readonly name: string
  /** Whether the backend is reachable now, as the `ws_broker_up` gauge reports it. */
  readonly healthy: boolean
  /**
   * Estimated heap bytes of the history this process holds, as `ws_broker_history_bytes`
   * reports it. Absent for a broker whose history lives in another process (Redis).
   */
  readonly historyBytes?: number
  /** Entries of history this process holds, as `ws_broker_history_entries` reports it; absent likewise. */
  readonly historyEntries?: number
  /** Appends to the topic's history and delivers to every node's listeners. */
  publish: (topic: string, message: BrokerMessage) => Promise<TopicPosition>
  /** Starts delivering the topic's new entries to `listener`. */
  subscribe: (topic: string, listener: TopicListener) => Promise<void>
  /** Stops delivering the topic to `listener`. */
  unsubscribe: (topic: string, listener: TopicListener) => Promise<void>
  /** The topic's latest offset and epoch; `"0-0"` for a topic that has seen nothing. */
  position: (topic: string) => Promise<TopicPosition>
  /** The held entries with an offset greater than `since`, oldest first. */
  history: (topic: string, since: string) => Promise<TopicHistory>
  /**
   * Adds this node's joins to a topic's presence and removes its leaves, telling every node's
   * presence listeners. The broker keeps this node's entries itself: after losing its backend
   * it announces them again, and a node that stops renewing them (it died) loses them within
   * the broker's presence lease, every other node hearing them leave.
   */
  updatePresence: (topic: string, diff: PresenceDiff) => Promise<void>
  /** Every entry of a topic's presence across nodes, in one read. */
  presence: (topic: string) => Promise<PresenceEntry[]>
  /** Starts telling `listener` of the topic's presence changes. */
  watchPresence: (topic: string, listener: PresenceListener) => Promise<void>
  unwatchPresence: (topic: string, listener: PresenceListener) => Promise<void>
  /**
   * Tells every node's fleet listeners `message` (JSON text), this node's included; resolves with
   * how many nodes it reached (Redis: how many subscriber connections `PUBLISH` delivered it to).
   * A node away from the backend at that moment does not hear it.
   */
  broadcast: (message: string) => Promise<number>
  watchFleet: (listener: FleetListener) => Promise<void>
  unwatchFleet: (listener: FleetListener) => Promise<void>
  /**
   * Requests that run once (idempotency keys), across every node that shares the backend: the
   * first claim of `key` wins (Redis: `SET NX`) and holds it for `leaseMs`, renewed while it
   * runs; a claim whose holder stopped renewing (its node died) may be taken again after it.
   */
  claimOnce: (key: string, leaseMs: number) => Promise<OnceClaim>
  /** Extends a claim this caller holds; false when it no longer does. */
  renewOnce: (key: string, token: string, leaseMs: number) => Promise<boolean>
  /** Ends a claim with the answer later claims get, kept for `ttlMs`. */
  finishOnce: (key: string, token: string, answer: string, ttlMs: number) => Promise<void>
  /** Gives a claim up without an answer (the run could not be made): the next claim runs it. */
  releaseOnce: (key: string, token: string) => Promise<void>
  /** Releases connections and timers; later calls fail with `BrokerUnavailableError`. */
  close: () => Promise<void>
}

/** Thrown by a broker that cannot reach its backend; clients receive `UNAVAILABLE`. */
export class BrokerUnavailableError extends Error {
  readonly code = 'BROKER_UNAVAILABLE'

  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'BrokerUnavailableError'
  }
}
