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
