import { randomBytes } from 'node:crypto'
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
import { Fifo } from './fifo.js'
import { MemoryPresence } from './memory-presence.js'
import { MemoryOnce } from './memory-once.js'
import { compareOffsets, ZERO_OFFSET } from '../protocol/offsets.js'

export interface MemoryBrokerOptions {
  /** Entries each topic keeps for recovery (default 1000). */
  historySize?: number
  /**
   * Topics whose history is kept (default 10,000). Beyond it, the least recently published
   * topic nobody listens to is forgotten, so clients naming topics cannot grow memory forever;
   * a resume on a forgotten topic reports `recovered: false`.
   */
  maxTopics?: number
  /**
   * Estimated heap bytes of history the whole broker keeps (default 64 MiB). Beyond it, the
   * broker's oldest entry goes first, whatever its topic.
   */
  maxHistoryBytes?: number
  /** Estimated heap bytes of history each topic keeps (default 1 MiB); its oldest entry goes first. */
  maxTopicHistoryBytes?: number
}

/**
 * What a held entry costs in the heap beyond its strings' characters: the entry object, its
 * `publishedAt` number, the string headers and its slots in the topic's and the broker's
 * queues. Measured on Node 20 (x64, after `global.gc()`) by holding 20,000 entries of 2,000
 * and of 100 characters, with and without a `traceparent`, in one topic and in 20: heapUsed
 * grew by 143 to 175 bytes per entry more than their characters (444 while entries were built
 * by spreading the message). RSS grew by 2.4 to 3.4 KB per 2,000-character entry: V8's free
 * space and young generation come on top of the heap. Each topic costs about 700 bytes more,
 * bounded by `maxTopics`.
 */
export const ENTRY_OVERHEAD_BYTES = 176

/** Records of dropped entries the broker's queue may hold beyond its live ones before it is compacted. */
const STALE_SLACK = 1_024

/** Any UTF-16 code unit beyond Latin-1: V8 then stores the whole string at two bytes per character. */
const BEYOND_LATIN1 = /[\u0100-\uffff]/

/** The heap bytes of a string's characters. */
function stringBytes (value: string): number {
  // The test also flattens a rope (serializers build their output by concatenation), so the
  // entry holds one string of this size rather than the pieces and the nodes joining them.
  return BEYOND_LATIN1.test(value) ? 2 * value.length : value.length
}

function entryBytes (entry: TopicEntry): number {
  const traceparent = entry.traceparent === undefined ? 0 : stringBytes(entry.traceparent)
  return ENTRY_OVERHEAD_BYTES + stringBytes(entry.data) + stringBytes(entry.event) + stringBytes(entry.offset) + traceparent
}

interface TopicState {
  /** The topic's name as first published or subscribed: every entry shares this one string. */
  topic: string
  history: Fifo<TopicEntry>
  /** The estimated bytes of each entry of `history`, in the same order. */
  sizes: Fifo<number>
  /** Their sum. */
  bytes: number
  /**
   * How many of this topic's records at the front of the broker's queue stand for entries the
   * topic dropped itself (its own bounds, or being forgotten): they are skipped, not dropped again.
   */
  stale: number
  /** Offset of the newest entry dropped from history: recovery from before it is incomplete. */
  trimmedThrough: string
  latest: string
  listeners: Set<TopicListener>
}

/**
 * A broker for one node. History lives in this process, so its epoch is new with every
 * instance: clients that resume after a restart learn that their offsets are gone.
 *
 * History is bounded by entries per topic, bytes per topic and bytes for the whole broker. The
 * broker-wide bound drops the broker's oldest entry: offsets only grow, so a queue holding each
 * entry's topic in publishing order names it, and each publish costs O(1) amortised.
 */
export class MemoryBroker implements Broker {
  readonly name = 'memory'
  readonly #historySize: number
  readonly #maxTopics: number
  readonly #maxHistoryBytes: number
  readonly #maxTopicHistoryBytes: number
  readonly #epoch = randomBytes(6).toString('base64url')
  readonly #topics = new Map<string, TopicState>()
  /** The topic of every held entry (and of some dropped ones, see `TopicState.stale`), oldest first. */
  readonly #queue = new Fifo<TopicState>()
  /** Records in `#queue` that stand for dropped entries. */
  #stale = 0
  #bytes = 0
  /**
   * The newest offset of any topic forgotten under `maxTopics`. A topic published again after
   * being forgotten starts its history there: a resume from its earlier life is incomplete.
   */
  #forgottenThrough = ZERO_OFFSET
  #lastMs = 0
  #seq = 0
  #closed = false
  readonly #presence = new MemoryPresence()
  readonly #fleet = new Set<FleetListener>()
  readonly #once = new MemoryOnce()

  constructor (options: MemoryBrokerOptions = {}) {
    this.#historySize = integerOption('historySize', options.historySize ?? DEFAULTS.historySize, 0)
    this.#maxTopics = integerOption('maxTopics', options.maxTopics ?? DEFAULTS.maxTopics, 1)
    this.#maxHistoryBytes = integerOption('maxHistoryBytes', options.maxHistoryBytes ?? DEFAULTS.maxHistoryBytes, 1)
    this.#maxTopicHistoryBytes = integerOption('maxTopicHistoryBytes', options.maxTopicHistoryBytes ?? DEFAULTS.maxTopicHistoryBytes, 1)
  }

  /** Estimated heap bytes of the history held, as the `ws_broker_history_bytes` gauge reports it. */
  get historyBytes (): number {
    return this.#bytes
  }

  /** Entries held across all topics, as the `ws_broker_history_entries` gauge reports it. */
  get historyEntries (): number {
    return this.#queue.length - this.#stale
  }

  async publish (topic: string, message: BrokerMessage): Promise<TopicPosition> {
    this.#assertOpen()
    const state = this.#state(topic)
    // Map order is recency of publishing: re-inserting moves the topic to the newest end.
    this.#topics.delete(state.topic)
    this.#topics.set(state.topic, state)
    this.#evictIfFull()
    // Built field by field: spreading `message` gave nearly every entry a hidden class of its
    // own, about 300 bytes each.
    const entry: TopicEntry = {
      topic: state.topic,
      offset: this.#nextOffset(),
      event: message.event,
      data: message.data,
      traceparent: message.traceparent,
      publishedAt: message.publishedAt
    }
    if (this.#historySize > 0) this.#hold(state, entry)
    else state.trimmedThrough = entry.offset
    state.latest = entry.offset
    for (const listener of state.listeners) listener(entry)
    return { offset: entry.offset, epoch: this.#epoch }
  }

  async subscribe (topic: string, listener: TopicListener): Promise<void> {
    this.#assertOpen()
    this.#state(topic).listeners.add(listener)
  }

  async unsubscribe (topic: string, listener: TopicListener): Promise<void> {
    const state = this.#topics.get(topic)
    if (state === undefined) return
    state.listeners.delete(listener)
    // A topic that never saw an entry holds nothing worth keeping once nobody listens.
    if (state.listeners.size === 0 && state.latest === ZERO_OFFSET) this.#topics.delete(topic)
  }

  async position (topic: string): Promise<TopicPosition> {
    this.#assertOpen()
    return { offset: this.#topics.get(topic)?.latest ?? ZERO_OFFSET, epoch: this.#epoch }
  }

  async history (topic: string, since: string): Promise<TopicHistory> {
    this.#assertOpen()
    const state = this.#topics.get(topic)
    const position = { offset: state?.latest ?? ZERO_OFFSET, epoch: this.#epoch }
    if (state === undefined) return { entries: [], complete: compareOffsets(since, ZERO_OFFSET) === 0, position }
    // A `since` beyond the newest offset cannot come from this history.
    if (compareOffsets(since, position.offset) > 0) return { entries: [], complete: false, position }
    const entries: TopicEntry[] = []
    for (let i = 0; i < state.history.length; i++) {
      const entry = state.history.at(i) as TopicEntry
      if (compareOffsets(entry.offset, since) > 0) entries.push(entry)
    }
    return { entries, complete: compareOffsets(since, state.trimmedThrough) >= 0, position }
  }

  async updatePresence (topic: string, diff: PresenceDiff): Promise<void> {
    this.#assertOpen()
    this.#presence.update(topic, diff)
  }

  async presence (topic: string): Promise<PresenceEntry[]> {
    this.#assertOpen()
    return this.#presence.read(topic)
  }

  async watchPresence (topic: string, listener: PresenceListener): Promise<void> {
    this.#assertOpen()
    this.#presence.watch(topic, listener)
  }

  async unwatchPresence (topic: string, listener: PresenceListener): Promise<void> {
    this.#presence.unwatch(topic, listener)
  }

  async broadcast (message: string): Promise<number> {
    this.#assertOpen()
    for (const listener of this.#fleet) listener(message)
    return this.#fleet.size
  }

  async watchFleet (listener: FleetListener): Promise<void> {
    this.#assertOpen()
    this.#fleet.add(listener)
  }

  async unwatchFleet (listener: FleetListener): Promise<void> {
    this.#fleet.delete(listener)
  }

  async claimOnce (key: string, leaseMs: number): Promise<OnceClaim> {
    this.#assertOpen()
    return this.#once.claim(key, leaseMs)
  }

  async renewOnce (key: string, token: string, leaseMs: number): Promise<boolean> {
    this.#assertOpen()
    return this.#once.renew(key, token, leaseMs)
  }

  async finishOnce (key: string, token: string, answer: string, ttlMs: number): Promise<void> {
    this.#assertOpen()
    this.#once.finish(key, token, answer, ttlMs)
  }

  async releaseOnce (key: string, token: string): Promise<void> {
    this.#once.release(key, token)
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#once.clear()
    this.#fleet.clear()
    this.#presence.clear()
    this.#topics.clear()
    this.#queue.clear()
    this.#stale = 0
    this.#bytes = 0
  }

  /** Adds `entry` to its topic's history, then drops the oldest entries until every bound holds. */
  #hold (state: TopicState, entry: TopicEntry): void {
    const bytes = entryBytes(entry)
    state.history.push(entry)
    state.sizes.push(bytes)
    state.bytes += bytes
    this.#bytes += bytes
    this.#queue.push(state)
    while (state.history.length > this.#historySize || state.bytes > this.#maxTopicHistoryBytes) {
      this.#dropOldest(state)
      state.stale++
      this.#stale++
    }
    while (this.#bytes > this.#maxHistoryBytes) {
      const oldest = this.#queue.shift() as TopicState
      if (oldest.stale > 0) {
        oldest.stale--
        this.#stale--
      } else {
        this.#dropOldest(oldest)
      }
    }
    this.#compactIfStale()
  }

  #dropOldest (state: TopicState): void {
    const entry = state.history.shift() as TopicEntry
    const bytes = state.sizes.shift() as number
    state.bytes -= bytes
    this.#bytes -= bytes
    state.trimmedThrough = entry.offset
  }

  /**
   * Records of dropped entries cost a slot each until the queue reaches them; when they
   * outnumber the live ones, one pass removes them all, so each is touched a bounded number of times.
   */
  #compactIfStale (): void {
    if (this.#stale <= this.#queue.length - this.#stale + STALE_SLACK) return
    this.#queue.retain((state) => {
      if (state.stale === 0) return true
      state.stale--
      return false
    })
    this.#stale = 0
  }

  #state (topic: string): TopicState {
    let state = this.#topics.get(topic)
    if (state === undefined) {
      state = {
        topic,
        history: new Fifo(),
        sizes: new Fifo(),
        bytes: 0,
        stale: 0,
        trimmedThrough: this.#forgottenThrough,
        latest: ZERO_OFFSET,
        listeners: new Set()
      }
      this.#topics.set(topic, state)
    }
    return state
  }

  #evictIfFull (): void {
    if (this.#topics.size <= this.#maxTopics) return
    for (const [topic, state] of this.#topics) {
      if (state.listeners.size === 0) {
        this.#topics.delete(topic)
        this.#forget(state)
        this.#compactIfStale()
        return
      }
    }
  }

  /** Releases a forgotten topic's history; its records in the queue become stale. */
  #forget (state: TopicState): void {
    if (compareOffsets(state.latest, this.#forgottenThrough) > 0) this.#forgottenThrough = state.latest
    this.#bytes -= state.bytes
    state.stale += state.history.length
    this.#stale += state.history.length
    state.history.clear()
    state.sizes.clear()
    state.bytes = 0
  }

  /** Offsets follow the clock but never go back, even when the clock does. */
  #nextOffset (): string {
    const now = Date.now()
    if (now > this.#lastMs) {
      this.#lastMs = now
      this.#seq = 0
    } else {
      this.#seq++
    }
    return `${this.#lastMs}-${this.#seq}`
  }

  get healthy (): boolean {
    return !this.#closed
  }

  #assertOpen (): void {
    if (this.#closed) throw new BrokerUnavailableError('memory broker is closed')
  }
}

function integerOption (name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new FRT_ERR_INVALID_OPTION(name, `expected an integer >= ${min}, got ${String(value)}`)
  }
  return value
}

/** Creates the default, single-node broker. */
export function createMemoryBroker (options?: MemoryBrokerOptions): MemoryBroker {
  return new MemoryBroker(options)
}
