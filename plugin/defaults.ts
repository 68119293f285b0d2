/**
 * Every default of the plugin, written once. The README's option table mirrors this object;
 * `test/readme.test.ts` keeps the two in step.
 */
export const DEFAULTS = Object.freeze({
  /** Largest accepted frame in bytes (inflated size when compression is on); larger closes 1009. */
  maxPayload: 65_536,
  /** Interval of protocol pings; a peer that missed the previous pong is terminated. 0 disables. */
  heartbeatMs: 25_000,
  /** Close with 4000 a connection that sent no message for this long. 0 disables. */
  idleTimeoutMs: 0,
  /** Open connections per node; upgrades beyond get 503. 0 means no cap. */
  maxConnections: 0,
  /** Bytes waiting to be written to one peer before it is closed as a slow consumer (4001). */
  maxBufferedBytes: 1_048_576,
  /** Upgrades per client IP per minute; beyond get 429. 0 disables. */
  upgradeRateLimit: 0,
  /**
   * A TCP socket must deliver its first request head within this long, or it is destroyed (as
   * HAProxy's `timeout http-request 10s` in `deploy/`). 0 disables.
   */
  headersTimeoutMs: 10_000,
  /**
   * `maxSockets` (open TCP sockets per process) has no literal default: it is the open-files
   * soft limit less a headroom of this share of it, at least `minSocketHeadroom`; no cap where
   * the limit cannot be read (non-Linux). 0 means no cap.
   */
  socketHeadroomRatio: 0.1,
  /** Descriptors always left for the process's own files, Redis, log and trace shipping. */
  minSocketHeadroom: 64,
  /** At `maxSockets`, a socket that sent no request for this long is evicted for a newcomer. */
  socketEvictionMinAgeMs: 1_000,
  /** Per-connection message budget (token bucket, burst of the same size). 0 disables. */
  messagesPerSecond: 50,
  /**
   * Message budget shared by every connection of one authenticated identity on a node, so a
   * client cannot multiply its rate by opening connections. 0 disables.
   */
  identityMessagesPerSecond: 200,
  /**
   * The same for anonymous connections, shared per client address. Off by default: behind NAT
   * or a proxy without `trustProxy`, many people share one address. 0 disables.
   */
  addressMessagesPerSecond: 0,
  /** Time a drain has to close every connection (1012) before the rest are terminated. */
  drainMs: 10_000,
  /** Fragments one message may arrive in; one more closes the connection with 1008. */
  maxFragments: 128,
  /** A message begun in fragments must be complete within this long, or the connection closes with 1008. 0 disables. */
  incompleteMessageTimeoutMs: 10_000,
  /** Pongs a peer may leave unread before it is terminated as a ping flood (ws's own default). */
  maxPendingPongs: 60,
  /** Messages without a `traceparent` that start a span: all, for the SDK's sampler to decide. */
  traceSampleRatio: 1,
  /** Deepest JSON nesting accepted in a frame, checked before anything recurses into it. */
  maxNestingDepth: 32,
  /** Topics one connection may hold at once. */
  maxSubscriptionsPerConnection: 100,
  /** `Retry-After` (seconds) of a 503 while draining or at capacity. */
  unavailableRetryAfterSeconds: 5,
  /** `retryAfterMs` suggested when the broker is unreachable. */
  unavailableRetryAfterMs: 1_000,
  /** Window in which refused messages count towards closing the connection with 1008. */
  abuseWindowMs: 10_000,
  /** Refused messages per window that close the connection: max(this, 2 × messagesPerSecond). */
  abuseMinRefusals: 50,
  /** How long a slow consumer's close frame may wait behind its full buffer before termination. */
  slowConsumerGraceMs: 1_000,
  /**
   * Presence changes of one topic are sent to its watchers at most once per this window, as one
   * frame holding the window's net joins and leaves; it widens up to tenfold while the topic
   * keeps changing.
   */
  presenceWindowMs: 100,
  /** Users a `$presence` reply lists when the request gives no `limit`. */
  presenceLimit: 100,
  /**
   * Redis broker: a node's presence entries outlive its last renewal by this long. Renewed four
   * times per lease, so the members of a node that died leave everywhere within lease × 1.25 plus
   * `presenceWindowMs` (12.6 s by default).
   */
  presenceLeaseMs: 10_000,
  /** How long the answer of a message sent with an idempotency key is kept for its retries. */
  idempotencyTtlMs: 600_000,
  /**
   * How long a run of such a message holds its key without renewing it (renewed every third of
   * it while it runs): a node that died mid-run lets a retry run the message again after it.
   */
  idempotencyLeaseMs: 5_000,
  /** Events each topic keeps for recovery, in either broker. */
  historySize: 1_000,
  /** Topics the memory broker keeps history for; the least recently published go first. */
  maxTopics: 10_000,
  /**
   * Memory broker: estimated heap bytes of history across all topics (64 MiB: when full,
   * measured at up to 73 MiB of heap and 106 MiB of RSS); beyond it the broker's oldest entry
   * goes first, whatever its topic.
   */
  maxHistoryBytes: 67_108_864,
  /** Memory broker: estimated heap bytes of one topic's history (1 MiB); its oldest entry goes first. */
  maxTopicHistoryBytes: 1_048_576,
  /** Redis broker: how long a topic's keys live after its last publish. */
  topicTtlSeconds: 86_400,
  /** Redis broker: how long a command may take before it fails as UNAVAILABLE. */
  commandTimeoutMs: 2_000,
  /** Redis broker: the prefix of every key it writes. */
  keyPrefix: 'frt:',
  /** Redis broker: the ceiling of its jittered reconnection delay. */
  redisReconnectMaxMs: 2_000
})
