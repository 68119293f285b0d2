import type { TopicEntry } from '../broker/broker.js'
import type { PresenceMembership } from '../presence/membership.js'

/** A connection's state on one topic. */
export interface Subscription {
  /** Highest offset sent; anything at or below it is a duplicate and dropped. */
  lastOffset: string
  /** Entries that arrived while the subscription was being set up, sent once it goes live. */
  pending: TopicEntry[] | null
  /** Its part in the topic's presence, when the route has presence there. */
  presence?: PresenceMembership
}
