import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { backoffDelay } from '../protocol/backoff.js'
import { DEFAULTS } from '../defaults.js'
import { FRT_ERR_INVALID_OPTION } from '../errors.js'
import {
  BrokerUnavailableError,
  type Broker,
  type BrokerMessage,
  type FleetListener,
  type OnceClaim,
  type PresenceDiff,
  type PresenceEntry,
  type PresenceListener,
  type TopicEntry,
  type TopicHistory,
  type TopicListener,
  type TopicPosition
} from './broker.js'
import { compareOffsets, ZERO_OFFSET } from '../protocol/offsets.js'
import { HISTORY_SCRIPT, POSITION_SCRIPT, PUBLISH_SCRIPT } from './redis-scripts.js'
import { runScript, unavailable } from './redis-errors.js'
import { RedisPresence } from './redis-presence.js'
import { RedisOnce } from './redis-once.js'

/** The few logger methods the broker uses; a pino or Fastify logger fits. */
export interface BrokerLogger {
  info: (fields: object, message: string) => void
  warn: (fields: object, message: string) => void
}

export interface RedisBrokerOptions {
  /** `redis://…` (or `rediss://…`); defaults to ioredis' own default, localhost:6379. */
  url?: string
  /** Passed to both ioredis clients, over the broker's defaults. */
  redisOptions?: RedisOptions
  /** Prepended to every key and channel, so several apps can share a Redis (default `frt:`). */
  keyPrefix?: string
  /** Entries each topic keeps for recovery, approximately: Redis trims whole blocks (default 1000). */
  historySize?: number
  /** A topic nobody published to for this long loses its history and gets a new epoch (default one day). */
  topicTtlSeconds?: number
  /** How long a command may take before Redis counts as unavailable (default 2000 ms). */
  commandTimeoutMs?: number
  /**
   * How long this node's presence entries outlive its last renewal (default 10 s): the members
   * of a node that died leave everywhere within 1.25 × this, plus the plugin's `presenceWindowMs`.
   */
  presenceLeaseMs?: number
  log?: BrokerLogger
}

interface Notification {
  id: string
  previous: string
  epoch: string
  entry: TopicEntry
}

interface LocalTopic {
  listeners: Set<TopicListener>
  channel: string
  /** The newest offset handed to the listeners: a notification whose `previous` differs shows a gap. */
  last: string
  epoch: string | undefined
  /** Set while the gap after `last` is re-read from the stream; notifications wait in `held`. */
  repairing: boolean
  held: Notification[]
  /** Settles when the topic's setup (SUBSCRIBE, then position) is done. */
  ready: Promise<void>
}

type HistoryReply = [string, string, string, number, Array<[string, string[]]>]

const REPAIR_RETRY_MS = 500
const LIVE_SUFFIX = '}:live'
const SILENT: BrokerLogger = { info: () => {}, warn: () => {} }

/**
 * Topics in Redis, for many nodes. Each topic is a stream (its history, trimmed to about
 * `historySize`) and a channel: a publish appends and notifies in one script, and each node
 * subscribes to the channels of the topics its connections hold. A notification names the
 * entry before it, so a node that missed one (its pub/sub link dropped, or Redis restarted)
 * re-reads the gap from the stream before delivering anything newer. Redis is the durability
 * boundary: what it loses, the epoch reports.
 */
export class RedisBroker implements Broker {
  readonly name = 'redis'
  readonly #commands: Redis
  readonly #subscriber: Redis
  readonly #prefix: string
  readonly #historySize: number
  readonly #ttlSeconds: number
  readonly #log: BrokerLogger
  readonly #topics = new Map<string, LocalTopic>()
  readonly #presence: RedisPresence
  readonly #once: RedisOnce
  readonly #fleet = new Set<FleetListener>()
  /** Settles when the fleet channel is subscribed, once a listener asked for it. */
  #fleetReady: Promise<void> | undefined
  #closed = false
  #downSince: number | undefined
  /** Candidate epochs for topics whose history is new or lost: this prefix, then a counter. */
  readonly #epochPrefix = randomBytes(6).toString('base64url')
  #epochCount = 0

  constructor (options: RedisBrokerOptions = {}) {
    this.#historySize = positiveInteger('historySize', options.historySize ?? DEFAULTS.historySize)
    this.#ttlSeconds = positiveInteger('topicTtlSeconds', options.topicTtlSeconds ?? DEFAULTS.topicTtlSeconds)
    const commandTimeout = positiveInteger('commandTimeoutMs', options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs)
    this.#prefix = options.keyPrefix ?? DEFAULTS.keyPrefix
    this.#log = options.log ?? SILENT
    const redisOptions: RedisOptions = {
      // Fail at once while disconnected: a publish answers UNAVAILABLE rather than waiting in a queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout,
      // Channels are subscribed again on `ready`, followed by a repair of each topic's gap.
      autoResubscribe: false,
      // Jittered, like the client's: nodes that lost Redis together do not return in step.
      retryStrategy: (attempt) => Math.max(10, backoffDelay(attempt, { minMs: 100, maxMs: DEFAULTS.redisReconnectMaxMs })),
      ...options.redisOptions
    }
    this.#commands = options.url === undefined ? new Redis(redisOptions) : new Redis(options.url, redisOptions)
    this.#subscriber = this.#commands.duplicate()
    this.#commands.defineCommand('frtPublish', { numberOfKeys: 2, lua: PUBLISH_SCRIPT })
    this.#commands.defineCommand('frtPosition', { numberOfKeys: 2, lua: POSITION_SCRIPT })
    this.#commands.defineCommand('frtHistory', { numberOfKeys: 2, lua: HISTORY_SCRIPT })
    for (const client of [this.#commands, this.#subscriber]) {
      // An unhandled 'error' event would end the process; a lost connection is logged once below.
      client.on('error', () => {})
      client.on('close', () => this.#lost())
      client.on('ready', () => this.#ready())
    }
    this.#subscriber.on('message', (channel: string, payload: string) => this.#notified(channel, payload))
    this.#once = new RedisOnce(this.#commands, this.#prefix)
    this.#presence = new RedisPresence({
      commands: this.#commands,
      subscriber: this.#subscriber,
      prefix: this.#prefix,
      leaseMs: presenceLease(options.presenceLeaseMs ?? DEFAULTS.presenceLeaseMs),
      warn: (fields, message) => this.#log.warn(fields, message)
    })
  }

  /** Both connections are up: commands answer and notifications arrive. */
  get healthy (): boolean {
    return !this.#closed && this.#commands.status === 'ready' && this.#subscriber.status === 'ready'
  }

  async publish (topic: string, message: BrokerMessage): Promise<TopicPosition> {
    const [id, epoch] = await this.#run<[string, string]>('frtPublish', topic, [
      this.#historySize,
      this.#channel(topic),
      message.event,
      message.data,
      message.traceparent ?? '',
      message.publishedAt ?? ''
    ])
    return { offset: id, epoch }
  }

  async subscribe (topic: string, listener: TopicListener): Promise<void> {
    this.#assertOpen()
    const local = this.#topics.get(topic)
    if (local !== undefined) {
      local.listeners.add(listener)
      // A topic still being set up delivers nothing yet: wait for it, or fail with it.
      try {
        await local.ready
      } catch (err) {
        local.listeners.delete(listener)
        throw unavailable(err)
      }
      return
    }
    const channel = this.#channel(topic)
    const created: LocalTopic = { listeners: new Set([listener]), channel, last: ZERO_OFFSET, epoch: undefined, repairing: true, held: [], ready: Promise.resolve() }
    this.#topics.set(topic, created)
    created.ready = this.#setUp(topic, created)
    await created.ready
  }

  /** Subscribed first, then positioned: what is published in between waits in `held`. */
  async #setUp (topic: string, local: LocalTopic): Promise<void> {
    let subscribed = false
    try {
      await this.#subscriber.subscribe(local.channel)
      subscribed = true
      const position = await this.position(topic)
      local.last = position.offset
      local.epoch = position.epoch
      this.#release(topic, local)
    } catch (err) {
      if (this.#topics.get(topic) === local) {
        this.#topics.delete(topic)
        if (subscribed) this.#subscriber.unsubscribe(local.channel).catch(() => {})
      }
      throw unavailable(err)
    }
  }

  async unsubscribe (topic: string, listener: TopicListener): Promise<void> {
    const local = this.#topics.get(topic)
    if (local === undefined || !local.listeners.delete(listener) || local.listeners.size > 0) return
    this.#topics.delete(topic)
    if (this.#subscriber.status === 'ready') await this.#subscriber.unsubscribe(local.channel).catch(() => {})
  }

  async position (topic: string): Promise<TopicPosition> {
    const [offset, epoch] = await this.#run<[string, string]>('frtPosition', topic, [])
    return { offset, epoch }
  }

  async history (topic: string, since: string): Promise<TopicHistory> {
    const [latest, epoch, oldest, trimmed, rows] = await this.#run<HistoryReply>('frtHistory', topic, [since])
    const position = { offset: latest, epoch }
    if (compareOffsets(since, latest) > 0) return { entries: [], complete: false, position }
    const entries = rows.map(([id, fields]) => entryOf(topic, id, fields))
    // Trimming does not record which ids it removed: history is known complete only when
    // nothing was trimmed or `since` is no older than the oldest entry still held.
    const complete = Number(trimmed) === 0 || compareOffsets(since, oldest) >= 0
    return { entries, complete, position }
  }

  async updatePresence (topic: string, diff: PresenceDiff): Promise<void> {
    this.#assertOpen()
    await this.#presence.update(topic, diff)
  }

  async presence (topic: string): Promise<PresenceEntry[]> {
    this.#assertOpen()
    return await this.#presence.read(topic)
  }

  async watchPresence (topic: string, listener: PresenceListener): Promise<void> {
    this.#assertOpen()
    await this.#presence.watch(topic, listener)
  }

  async unwatchPresence (topic: string, listener: PresenceListener): Promise<void> {
    await this.#presence.unwatch(topic, listener)
  }

  async claimOnce (key: string, leaseMs: number): Promise<OnceClaim> {
    this.#assertOpen()
    return await this.#once.claim(key, leaseMs)
  }

  async renewOnce (key: string, token: string, leaseMs: number): Promise<boolean> {
    this.#assertOpen()
    return await this.#once.renew(key, token, leaseMs)
  }

  async finishOnce (key: string, token: string, answer: string, ttlMs: number): Promise<void> {
    this.#assertOpen()
    await this.#once.finish(key, token, answer, ttlMs)
  }

  async releaseOnce (key: string, token: string): Promise<void> {
    this.#assertOpen()
    await this.#once.release(key, token)
  }

  async broadcast (message: string): Promise<number> {
    this.#assertOpen()
    try {
      return await this.#commands.publish(this.#fleetChannel(), message)
    } catch (err) {
      throw unavailable(err)
    }
  }

  async watchFleet (listener: FleetListener): Promise<void> {
    this.#assertOpen()
    this.#fleet.add(listener)
    this.#fleetReady ??= this.#subscriber.subscribe(this.#fleetChannel()).then(() => {}, (err: unknown) => {
      this.#fleetReady = undefined
      throw unavailable(err)
    })
    // A listener stays even when Redis is away now: the reconnection subscribes the channel.
    await this.#fleetReady
  }

  async unwatchFleet (listener: FleetListener): Promise<void> {
    if (!this.#fleet.delete(listener) || this.#fleet.size > 0) return
    this.#fleetReady = undefined
    if (this.#subscriber.status === 'ready') await this.#subscriber.unsubscribe(this.#fleetChannel()).catch(() => {})
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#fleet.clear()
    this.#presence.close()
    this.#topics.clear()
    await Promise.all([this.#commands, this.#subscriber].map(async (client) => {
      // QUIT needs a live connection; with Redis gone it would wait for a reconnection.
      if (client.status !== 'ready') {
        client.disconnect()
        return
      }
      try {
        await client.quit()
      } catch {
        client.disconnect()
      }
    }))
  }

  /** Runs one of the scripts on the topic's keys with a fresh candidate epoch. */
  async #run<T> (command: 'frtPublish' | 'frtPosition' | 'frtHistory', topic: string, args: Array<string | number>): Promise<T> {
    this.#assertOpen()
    const keys = [`${this.#prefix}{${topic}}:stream`, `${this.#prefix}{${topic}}:meta`]
    // Unique per instance and call, without asking the CSPRNG on every command (5 µs each).
    const epoch = `${this.#epochPrefix}${(this.#epochCount++).toString(36)}`
    return await runScript<T>(this.#commands, command, [...keys, epoch, this.#ttlSeconds, ...args])
  }

  #channel (topic: string): string {
    return `${this.#prefix}{${topic}${LIVE_SUFFIX}`
  }

  /** The inverse of `#channel`. */
  #topicOf (channel: string): string {
    return channel.slice(this.#prefix.length + 1, -LIVE_SUFFIX.length)
  }

  #fleetChannel (): string {
    return `${this.#prefix}fleet`
  }

  #notified (channel: string, payload: string): void {
    if (channel === this.#fleetChannel()) {
      for (const listener of this.#fleet) listener(payload)
      return
    }
    if (!channel.endsWith(LIVE_SUFFIX)) return
    const topic = this.#topicOf(channel)
    const local = this.#topics.get(topic)
    if (local === undefined) return
    const notification = parseNotification(topic, payload)
    if (notification === undefined) return
    if (local.repairing) {
      local.held.push(notification)
      return
    }
    this.#accept(topic, local, notification)
  }

  #accept (topic: string, local: LocalTopic, notification: Notification): void {
    if (notification.epoch !== local.epoch) {
      // Redis lost this topic's history: the new sequence is read from its start, so entries
      // published while this node was away from it are not skipped.
      local.epoch = notification.epoch
      local.last = ZERO_OFFSET
      local.held.push(notification)
      this.#repair(topic, local)
      return
    }
    if (compareOffsets(notification.id, local.last) <= 0) return
    if (notification.previous !== local.last) {
      local.held.push(notification)
      this.#repair(topic, local)
      return
    }
    local.last = notification.id
    for (const listener of local.listeners) listener(notification.entry)
  }

  /** Re-reads what followed `last` from the stream, then lets held notifications through. */
  #repair (topic: string, local: LocalTopic): void {
    if (local.repairing) return
    local.repairing = true
    const from = local.last
    this.history(topic, from).then((history) => {
      if (this.#topics.get(topic) !== local) return
      local.epoch = history.position.epoch
      for (const entry of history.entries) {
        if (compareOffsets(entry.offset, local.last) <= 0) continue
        local.last = entry.offset
        for (const listener of local.listeners) listener(entry)
      }
      if (history.entries.length > 0) this.#log.info({ topic, entries: history.entries.length, from }, 'broker.gap_repaired')
      this.#release(topic, local)
    }, () => {
      // Notifications stay held until the gap is filled: try again shortly (and on reconnect).
      setTimeout(() => {
        if (this.#closed || this.#topics.get(topic) !== local) return
        local.repairing = false
        this.#repair(topic, local)
      }, REPAIR_RETRY_MS).unref()
    })
  }

  /** Ends a repair or a subscription's setup: held notifications go through in order. */
  #release (topic: string, local: LocalTopic): void {
    local.repairing = false
    const held = local.held.sort((a, b) => compareOffsets(a.id, b.id))
    local.held = []
    for (const notification of held) {
      if (local.repairing) local.held.push(notification)
      else this.#accept(topic, local, notification)
    }
  }

  #lost (): void {
    if (this.#closed) return
    // Until the gap is re-read after reconnecting, notifications wait.
    for (const local of this.#topics.values()) local.repairing = true
    if (this.#downSince !== undefined) return
    this.#downSince = Date.now()
    this.#log.warn({ broker: this.name }, 'broker.disconnected')
  }

  /** A connection is back: channels are subscribed again and every topic's gap is re-read. */
  #ready (): void {
    if (this.#closed || this.#commands.status !== 'ready' || this.#subscriber.status !== 'ready') return
    if (this.#downSince !== undefined) {
      this.#log.info({ broker: this.name, downMs: Date.now() - this.#downSince }, 'broker.reconnected')
      this.#downSince = undefined
    }
    const channels = [...this.#topics.values()].map((local) => local.channel)
    const presenceChannels = this.#presence.channels
    if (this.#fleet.size > 0) channels.push(this.#fleetChannel())
    if (channels.length + presenceChannels.length === 0) {
      this.#presence.recovered().catch(() => {})
      return
    }
    this.#subscriber.subscribe(...channels, ...presenceChannels).then(() => {
      this.#presence.recovered().catch(() => {})
      for (const [topic, local] of this.#topics) {
        // A topic still being set up positions itself.
        if (local.epoch === undefined) continue
        local.repairing = false
        this.#repair(topic, local)
      }
    }, () => {
      // Deaf to every topic until this succeeds: try again shortly.
      setTimeout(() => this.#ready(), REPAIR_RETRY_MS).unref()
    })
  }

  #assertOpen (): void {
    if (this.#closed) throw new BrokerUnavailableError('redis broker is closed')
  }
}

/** Renewed every quarter lease: much shorter, and a renewal slowed by a busy node or Redis would let live nodes reap each other. */
const MIN_PRESENCE_LEASE_MS = 500

function presenceLease (value: number): number {
  if (!Number.isInteger(value) || value < MIN_PRESENCE_LEASE_MS) throw new FRT_ERR_INVALID_OPTION('presenceLeaseMs', `expected an integer >= ${MIN_PRESENCE_LEASE_MS}, got ${String(value)}`)
  return value
}

function positiveInteger (name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new FRT_ERR_INVALID_OPTION(name, `expected an integer >= 1, got ${String(value)}`)
  return value
}

function entryOf (topic: string, offset: string, fields: string[]): TopicEntry {
  const values: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) values[fields[i] as string] = fields[i + 1] as string
  return message(topic, offset, values.e ?? '', values.d ?? 'null', values.t ?? '', values.p ?? '')
}

function message (topic: string, offset: string, event: string, data: string, traceparent: string, publishedAt: string): TopicEntry {
  const entry: TopicEntry = { topic, offset, event, data }
  if (traceparent !== '') entry.traceparent = traceparent
  if (publishedAt !== '') entry.publishedAt = Number(publishedAt)
  return entry
}

/** `id \n previous \n epoch \n event \n traceparent \n publishedAt \n data`: data last, as it may hold newlines. */
function parseNotification (topic: string, payload: string): Notification | undefined {
  const parts: string[] = []
  let start = 0
  for (let i = 0; i < 6; i++) {
    const end = payload.indexOf('\n', start)
    if (end < 0) return undefined
    parts.push(payload.slice(start, end))
    start = end + 1
  }
  const [id, previous, epoch, event, traceparent, publishedAt] = parts as [string, string, string, string, string, string]
  return { id, previous, epoch, entry: message(topic, id, event, payload.slice(start), traceparent, publishedAt) }
}

/** Creates a broker for many nodes over one Redis. */
export function createRedisBroker (options?: RedisBrokerOptions): RedisBroker {
  return new RedisBroker(options)
}
