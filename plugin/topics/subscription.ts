import type { TopicEntry } from '../broker/broker.js'

/** A connection's state on one topic. */
export interface Subscription {
  /** Highest offset sent; anything at or below it is a duplicate and dropped. */
  lastOffset: string
  /** Entries that arrived while the subscription was being set up, sent once it goes live. */
  pending: TopicEntry[] | null
}
