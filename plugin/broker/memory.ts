import { randomBytes } from 'node:crypto'
import { DEFAULTS } from '../defaults.js'
import {
  BrokerUnavailableError,
  type Broker,
  type BrokerMessage,
  type TopicEntry,
  type TopicHistory,
  type TopicListener,
  type TopicPosition
} from './broker.js'
import { compareOffsets, ZERO_OFFSET } from './offset.js'

export interface MemoryBrokerOptions {
  /** Entries each topic keeps for recovery (default 1000). */
  historySize?: number
  /**
   * Topics whose history is kept (default 10,000). Beyond it, the least recently published
   * topic nobody listens to is forgotten, so clients naming topics cannot grow memory forever;
   * a resume on a forgotten topic reports `recovered: false`.
   */
  maxTopics?: number
}

interface TopicState {
  history: TopicEntry[]
  /** Offset of the newest entry dropped from history: recovery from before it is incomplete. */
  trimmedThrough: string
  latest: string
  listeners: Set<TopicListener>
}

/**
 * A broker for one node. History lives in this process, so its epoch is new with every
 * instance: clients that resume after a restart learn that their offsets are gone.
 */
export class MemoryBroker implements Broker {
  readonly name = 'memory'
  readonly #historySize: number
  readonly #maxTopics: number
  readonly #epoch = randomBytes(6).toString('base64url')
  readonly #topics = new Map<string, TopicState>()
  #lastMs = 0
  #seq = 0
  #closed = false

  constructor (options: MemoryBrokerOptions = {}) {
    const historySize = options.historySize ?? DEFAULTS.historySize
    if (!Number.isInteger(historySize) || historySize < 0) {
      throw new TypeError(`historySize must be a non-negative integer, got ${historySize}`)
    }
    this.#historySize = historySize
    const maxTopics = options.maxTopics ?? DEFAULTS.maxTopics
    if (!Number.isInteger(maxTopics) || maxTopics < 1) {
      throw new TypeError(`maxTopics must be a positive integer, got ${maxTopics}`)
    }
    this.#maxTopics = maxTopics
  }

  async publish (topic: string, message: BrokerMessage): Promise<TopicPosition> {
    this.#assertOpen()
    const state = this.#state(topic)
    // Map order is recency of publishing: re-inserting moves the topic to the newest end.
    this.#topics.delete(topic)
    this.#topics.set(topic, state)
    this.#evictIfFull()
    const entry: TopicEntry = { ...message, topic, offset: this.#nextOffset() }
    if (this.#historySize > 0) {
      state.history.push(entry)
      if (state.history.length > this.#historySize) {
        state.trimmedThrough = (state.history.shift() as TopicEntry).offset
      }
    } else {
      state.trimmedThrough = entry.offset
    }
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
    const entries = state.history.filter((entry) => compareOffsets(entry.offset, since) > 0)
    return { entries, complete: compareOffsets(since, state.trimmedThrough) >= 0, position }
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#topics.clear()
  }

  #state (topic: string): TopicState {
    let state = this.#topics.get(topic)
    if (state === undefined) {
      state = { history: [], trimmedThrough: ZERO_OFFSET, latest: ZERO_OFFSET, listeners: new Set() }
      this.#topics.set(topic, state)
    }
    return state
  }

  #evictIfFull (): void {
    if (this.#topics.size <= this.#maxTopics) return
    for (const [topic, state] of this.#topics) {
      if (state.listeners.size === 0) {
        this.#topics.delete(topic)
        return
      }
    }
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

/** Creates the default, single-node broker. */
export function createMemoryBroker (options?: MemoryBrokerOptions): MemoryBroker {
  return new MemoryBroker(options)
}
