import type { FastifyBaseLogger } from 'fastify'
import type { Broker, TopicEntry, TopicListener } from './broker/broker.js'
import { compareOffsets } from './broker/offset.js'
import type { Connection, Subscription } from './connection.js'
import { topicEventFrame } from './protocol.js'

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

/**
 * The node's side of topics: one broker subscription per topic however many local connections
 * hold it, each entry framed once and the same bytes written to every member, and the handover
 * from history replay to live delivery without gaps or duplicates.
 */
export class TopicHub {
  readonly #broker: Broker
  readonly #log: FastifyBaseLogger
  readonly #topics = new Map<string, LocalTopic>()

  constructor (broker: Broker, log: FastifyBaseLogger) {
    this.#broker = broker
    this.#log = log
  }

  /**
   * Joins `connection` to `topic` and reads what it must replay. Live entries that arrive
   * meanwhile are held until `goLive`, which the caller runs once it has answered.
   */
  async subscribe (connection: Connection, topic: string, since?: string, epoch?: string): Promise<SubscribeResult> {
    this.unsubscribe(connection, topic)
    const subscription: Subscription = { lastOffset: '0-0', pending: [], replay: [] }
    connection.subscriptions.set(topic, subscription)
    try {
      await this.#join(topic, connection)
      if (since === undefined) {
        const position = await this.#broker.position(topic)
        subscription.lastOffset = position.offset
        return { topic, ...position, recovered: false }
      }
      const history = await this.#broker.history(topic, since)
      const { position } = history
      if (epoch !== undefined && epoch !== position.epoch) {
        // Offsets of another epoch point into a history that no longer exists.
        subscription.lastOffset = position.offset
        return { topic, ...position, recovered: false }
      }
      subscription.replay = history.entries
      subscription.lastOffset = since
      return { topic, ...position, recovered: history.complete }
    } catch (err) {
      if (connection.subscriptions.get(topic) === subscription) this.unsubscribe(connection, topic)
      throw err
    }
  }

  /** Sends the replay, then what arrived during setup, then lets live entries through. */
  goLive (connection: Connection, topic: string): void {
    const subscription = connection.subscriptions.get(topic)
    if (subscription?.pending == null) return
    const held = subscription.pending
    subscription.pending = null
    for (const entry of subscription.replay) this.#deliverTo(connection, subscription, entry, frameOf(entry))
    subscription.replay = []
    for (const entry of held) this.#deliverTo(connection, subscription, entry, frameOf(entry))
  }

  unsubscribe (connection: Connection, topic: string): boolean {
    if (!connection.subscriptions.delete(topic)) return false
    const local = this.#topics.get(topic)
    if (local === undefined) return true
    local.members.delete(connection)
    if (local.members.size === 0) {
      this.#topics.delete(topic)
      local.ready
        .then(() => this.#broker.unsubscribe(topic, local.listener))
        .catch((err: unknown) => this.#log.warn({ err, topic }, 'ws.broker_unsubscribe_failed'))
    }
    return true
  }

  unsubscribeAll (connection: Connection): void {
    for (const topic of [...connection.subscriptions.keys()]) this.unsubscribe(connection, topic)
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
    if (local.members.size === 0) return
    // Framed and encoded once: every member gets the same bytes.
    const frame = Buffer.from(frameOf(entry))
    for (const connection of local.members) {
      const subscription = connection.subscriptions.get(entry.topic)
      if (subscription === undefined) continue
      if (subscription.pending !== null) subscription.pending.push(entry)
      else this.#deliverTo(connection, subscription, entry, frame)
    }
  }

  #deliverTo (connection: Connection, subscription: Subscription, entry: TopicEntry, frame: string | Buffer): void {
    if (compareOffsets(entry.offset, subscription.lastOffset) <= 0) return
    subscription.lastOffset = entry.offset
    connection.write(frame)
  }
}

function frameOf (entry: TopicEntry): string {
  return topicEventFrame(entry.event, entry.topic, entry.offset, entry.data)
}
