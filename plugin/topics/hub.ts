import type { FastifyBaseLogger } from 'fastify'
import type { Broker, TopicEntry, TopicListener } from '../broker/broker.js'
import { comesAfter, compareOffsets } from '../protocol/offsets.js'
import type { Connection } from '../connection/connection.js'
import { ConnectionGoneError } from '../messages/realtime-error.js'
import type { Subscription } from './subscription.js'
import type { PresenceMembership } from '../presence/membership.js'

/** Told of each subscription removed from a connection. */
export type SubscriptionEnded = (connection: Connection, topic: string, subscription: Subscription) => void
import { SharedText } from '../protocol/framing.js'
import { topicEventFrame } from '../protocol/frames.js'
import { startDeliverySpan } from '../telemetry/tracing.js'

interface LocalTopic {
  members: Set<Connection>
  /** Settles when the broker delivers this topic to `listener`. */
  ready: Promise<void>
  listener: TopicListener
}

/** What `$subscribe` answers. */
export interface SubscribeResult {
  topic: string
  offset: string
  epoch: string
  recovered: boolean
}

/** Thrown when the connection closed while its subscription was being set up: a quiet outcome. */
export class SubscriptionAbandonedError extends ConnectionGoneError {
  constructor () {
    super('the connection closed during $subscribe')
    this.name = 'SubscriptionAbandonedError'
  }
}

/**
 * The node's side of topics: one broker subscription per topic however many local connections
 * hold it, each entry framed once and the same bytes written to every member, and the handover
 * from history replay to live delivery without gaps or duplicates.
 */
export class TopicHub {
  readonly #broker: Broker
  readonly #log: FastifyBaseLogger
  readonly #topics = new Map<string, LocalTopic>()
  readonly #delivered: (entry: TopicEntry) => void
  readonly #ended: SubscriptionEnded

  /**
   * `delivered` hears of every live entry that reaches this node, once per entry; `ended` of
   * every subscription removed, however it ends (unsubscribed, superseded, abandoned, closed).
   */
  constructor (broker: Broker, log: FastifyBaseLogger, delivered: (entry: TopicEntry) => void = () => {}, ended: SubscriptionEnded = () => {}) {
    this.#broker = broker
    this.#log = log
    this.#delivered = delivered
    this.#ended = ended
  }

  /**
   * Joins `connection` to `topic`, replays what it missed since `since`, then lets live entries
   * through. Live entries arriving during setup are held and sent after the replay. A newer
   * `$subscribe` to the same topic supersedes this one: it then answers but changes nothing.
   * `presence` becomes the subscription's own at once, so its end ends the membership too.
   */
  async subscribe (connection: Connection, topic: string, since?: string, epoch?: string, presence?: PresenceMembership): Promise<SubscribeResult> {
    if (connection.closed) throw new SubscriptionAbandonedError()
    this.unsubscribe(connection, topic)
    const subscription: Subscription = { lastOffset: '0-0', pending: [], presence }
    connection.subscriptions.set(topic, subscription)
    const current = (): boolean => {
      if (connection.closed) {
        this.#abandon(connection, topic, subscription)
        throw new SubscriptionAbandonedError()
      }
      return connection.subscriptions.get(topic) === subscription
    }
    try {
      await this.#join(topic, connection)
      if (since === undefined) {
        const position = await this.#broker.position(topic)
        if (current()) this.#goLive(connection, subscription, position.offset, [])
        return { topic, ...position, recovered: false }
      }
      const history = await this.#broker.history(topic, since)
      const { position } = history
      // Offsets of another epoch, or beyond the newest offset, point into a history that no
      // longer exists: nothing to replay, and live delivery starts from the present.
      if ((epoch !== undefined && epoch !== position.epoch) || compareOffsets(since, position.offset) > 0) {
        if (current()) this.#goLive(connection, subscription, position.offset, [])
        return { topic, ...position, recovered: false }
      }
      if (current()) this.#goLive(connection, subscription, since, history.entries)
      return { topic, ...position, recovered: history.complete }
    } catch (err) {
      if (!(err instanceof SubscriptionAbandonedError)) this.#abandon(connection, topic, subscription)
      throw err
    }
  }

  unsubscribe (connection: Connection, topic: string): boolean {
    const subscription = connection.subscriptions.get(topic)
    if (subscription === undefined) return false
    connection.subscriptions.delete(topic)
    this.#leave(connection, topic)
    this.#ended(connection, topic, subscription)
    return true
  }

  unsubscribeAll (connection: Connection): void {
    if (!connection.hasSubscriptions) return
    for (const topic of [...connection.subscriptions.keys()]) this.unsubscribe(connection, topic)
  }

  /** Undoes a subscription that will never go live, if nothing newer replaced it. */
  #abandon (connection: Connection, topic: string, subscription: Subscription): void {
    if (connection.subscriptions.get(topic) === subscription) this.unsubscribe(connection, topic)
    else if (!connection.subscriptions.has(topic)) this.#leave(connection, topic)
  }

  /** Sends the replay, then what arrived during setup, then lets live entries through. */
  #goLive (connection: Connection, subscription: Subscription, from: string, replay: TopicEntry[]): void {
    const held = subscription.pending ?? []
    subscription.pending = null
    subscription.lastOffset = from
    for (const entry of [...replay, ...held]) this.#deliverTo(connection, subscription, entry, textOf(entry), comesAfter(entry.offset))
  }

  #leave (connection: Connection, topic: string): void {
    const local = this.#topics.get(topic)
    if (local === undefined || !local.members.delete(connection) || local.members.size > 0) return
    this.#topics.delete(topic)
    local.ready
      .then(() => this.#broker.unsubscribe(topic, local.listener))
      .catch((err: unknown) => this.#log.warn({ err, topic }, 'ws.broker_unsubscribe_failed'))
  }

  async #join (topic: string, connection: Connection): Promise<void> {
    let local = this.#topics.get(topic)
    if (local === undefined) {
      const created: LocalTopic = { members: new Set(), ready: Promise.resolve(), listener: (entry) => this.#deliver(created, entry) }
      created.ready = this.#broker.subscribe(topic, created.listener)
      created.ready.catch(() => {
        if (this.#topics.get(topic) === created) this.#topics.delete(topic)
      })
      this.#topics.set(topic, created)
      local = created
    }
    local.members.add(connection)
    try {
      await local.ready
    } catch (err) {
      local.members.delete(connection)
      throw err
    }
  }

  #deliver (local: LocalTopic, entry: TopicEntry): void {
    this.#delivered(entry)
    if (local.members.size === 0) return
    // One span per entry and node, joined to the publisher's trace; none when it was not traced.
    const span = entry.traceparent === undefined ? undefined : startDeliverySpan(entry.topic, entry.event, entry.traceparent)
    // Encoded and framed once: every member gets the same bytes.
    const text = textOf(entry)
    const isNew = comesAfter(entry.offset)
    for (const connection of local.members) {
      const subscription = connection.subscriptions.get(entry.topic)
      if (subscription === undefined) continue
      if (subscription.pending !== null) subscription.pending.push(entry)
      else this.#deliverTo(connection, subscription, entry, text, isNew)
    }
    span?.end()
  }

  /** The one place an entry reaches a member: at most once, and never behind what it has. */
  #deliverTo (connection: Connection, subscription: Subscription, entry: TopicEntry, text: SharedText, isNew: (lastOffset: string) => boolean): void {
    if (!isNew(subscription.lastOffset)) return
    subscription.lastOffset = entry.offset
    connection.writeShared(text, entry.event)
  }
}

function textOf (entry: TopicEntry): SharedText {
  return new SharedText(topicEventFrame(entry.event, entry.topic, entry.offset, entry.data))
}
