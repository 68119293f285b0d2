/**
 * Every default of the plugin, written once. The README's option table mirrors this object;
 * `test/readme.test.ts` keeps the two in step.
 */
export const DEFAULTS = Object.freeze({
  /** Largest accepted frame in bytes (inflated size when compression is on); larger closes 1009. */
  maxPayload: 65_536,
  /** Interval of protocol pings; a peer that missed the previous pong is terminated. 0 disables. */
  heartbeatMs: 25_000,
  /** Per-connection message budget (token bucket, burst of the same size). 0 disables. */
  messagesPerSecond: 50,
  /** Deepest JSON nesting accepted in a frame, checked before anything recurses into it. */
  maxNestingDepth: 32,
  /** Topics one connection may hold at once. */
  maxSubscriptionsPerConnection: 100,
  /** `retryAfterMs` suggested when the broker is unreachable. */
  unavailableRetryAfterMs: 1_000,
  /** Window in which refused messages count towards closing the connection with 1008. */
  abuseWindowMs: 10_000,
  /** Refused messages per window that close the connection: max(this, 2 × messagesPerSecond). */
  abuseMinRefusals: 50,
  /** Events each topic keeps for recovery in the memory broker. */
  historySize: 1_000
})
