import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { PresenceDiff, PresenceEntry, PresenceListener } from './broker.js'
import { runScript, unavailable } from './redis-errors.js'
import { PRESENCE_READ_SCRIPT, PRESENCE_SYNC_SCRIPT, PRESENCE_TICK_SCRIPT, PRESENCE_UPDATE_SCRIPT } from './redis-presence-scripts.js'

interface WatchedTopic {
  listeners: Set<PresenceListener>
  /** Settles when the topic's channel is subscribed. */
  ready: Promise<void>
}

type PresenceCommand = 'frtPresenceUpdate' | 'frtPresenceSync' | 'frtPresenceTick' | 'frtPresenceRead'

const CHANNEL_SUFFIX = '}:presence-changes'

export interface RedisPresenceOptions {
  commands: Redis
  subscriber: Redis
  prefix: string
  leaseMs: number
  warn: (fields: object, message: string) => void
}

/**
 * Presence over Redis. This node's entries are its own: it keeps them here, writes them to the
 * topic's hash tagged with its id, and renews its lease on every topic it holds entries in
 * four times per lease. A node that stops renewing (it died) is reaped by the next script any
 * other node runs on the topic, and every one of them runs one per topic it holds or watches at
 * the same pace: its members leave everywhere within lease × 1.25. After an outage, or an update
 * that failed, the node makes the topic's entries of its own exactly what it holds again.
 */
export class RedisPresence {
  /** Tags this process's entries, so they survive nothing of another node's. */
  readonly node = randomBytes(9).toString('base64url')
  readonly #commands: Redis
  readonly #subscriber: Redis
  readonly #prefix: string
  readonly #leaseMs: number
  readonly #warn: RedisPresenceOptions['warn']
  /** This node's entries, by topic and connection: what Redis must hold of it. */
  readonly #own = new Map<string, Map<string, PresenceEntry>>()
  /** Topics whose last update failed: synced on the next round. */
  readonly #dirty = new Set<string>()
  readonly #watched = new Map<string, WatchedTopic>()
  readonly #timer: ReturnType<typeof setInterval>
  #renewing = false

  constructor (options: RedisPresenceOptions) {
    this.#commands = options.commands
    this.#subscriber = options.subscriber
    this.#prefix = options.prefix
    this.#leaseMs = options.leaseMs
    this.#warn = options.warn
    this.#commands.defineCommand('frtPresenceUpdate', { numberOfKeys: 2, lua: PRESENCE_UPDATE_SCRIPT })
    this.#commands.defineCommand('frtPresenceSync', { numberOfKeys: 2, lua: PRESENCE_SYNC_SCRIPT })
    this.#commands.defineCommand('frtPresenceTick', { numberOfKeys: 2, lua: PRESENCE_TICK_SCRIPT })
    this.#commands.defineCommand('frtPresenceRead', { numberOfKeys: 2, lua: PRESENCE_READ_SCRIPT })
    this.#subscriber.on('message', (channel: string, payload: string) => this.#notified(channel, payload))
    this.#timer = setInterval(() => { this.#renew() }, Math.max(50, Math.floor(this.#leaseMs / 4)))
    this.#timer.unref()
  }

  /** The channels to subscribe again after a reconnection. */
  get channels (): string[] {
    return [...this.#watched.keys()].map((topic) => this.#channel(topic))
  }

  async update (topic: string, diff: PresenceDiff): Promise<void> {
    let own = this.#own.get(topic)
    for (const entry of diff.leaves) own?.delete(entry.connection)
    for (const entry of diff.joins) {
      if (own === undefined) {
        own = new Map()
        this.#own.set(topic, own)
      }
      own.set(entry.connection, entry)
    }
    const holding = own?.size ?? 0
    if (holding === 0) this.#own.delete(topic)
    const joins = diff.joins.map((entry) => this.#encode(entry))
    let missing: number
    try {
      missing = await this.#run<number>('frtPresenceUpdate', topic, [holding, joins.length, ...joins, ...diff.leaves.map((entry) => entry.connection)])
    } catch (err) {
      this.#dirty.add(topic)
      throw err
    }
    // Reaped while it stalled, or Redis lost it: its other entries are written again.
    if (missing === 1 && holding > diff.joins.length) await this.#sync(topic).catch(() => this.#dirty.add(topic))
  }

  async read (topic: string): Promise<PresenceEntry[]> {
    const values = await this.#run<string[]>('frtPresenceRead', topic, [])
    const entries: PresenceEntry[] = []
    for (const value of values) {
      const entry = decode(value)
      if (entry !== undefined) entries.push(entry)
    }
    return entries
  }

  /** Resolves once the topic's channel is subscribed: a read made after it misses no change. */
  async watch (topic: string, listener: PresenceListener): Promise<void> {
    let watched = this.#watched.get(topic)
    if (watched === undefined) {
      const created: WatchedTopic = { listeners: new Set(), ready: Promise.resolve() }
      created.ready = this.#subscriber.subscribe(this.#channel(topic)).then(() => {}, (err: unknown) => {
        if (this.#watched.get(topic) === created) this.#watched.delete(topic)
        throw unavailable(err)
      })
      this.#watched.set(topic, created)
      watched = created
    }
    watched.listeners.add(listener)
    try {
      await watched.ready
    } catch (err) {
      watched.listeners.delete(listener)
      throw err
    }
  }

  async unwatch (topic: string, listener: PresenceListener): Promise<void> {
    const watched = this.#watched.get(topic)
    if (watched === undefined || !watched.listeners.delete(listener) || watched.listeners.size > 0) return
    this.#watched.delete(topic)
    if (this.#subscriber.status === 'ready') await this.#subscriber.unsubscribe(this.#channel(topic)).catch(() => {})
  }

  /**
   * Redis is back (after a restart it holds nothing): every topic's entries of this node are
   * written again, then every listener is told to read the topic afresh.
   */
  async recovered (): Promise<void> {
    // Topics this node left while Redis was away are synced too: to nothing of its own.
    const topics = new Set([...this.#own.keys(), ...this.#dirty])
    await Promise.all([...topics].map(async (topic) => {
      this.#dirty.delete(topic)
      await this.#sync(topic).catch(() => this.#dirty.add(topic))
    }))
    for (const watched of this.#watched.values()) {
      for (const listener of watched.listeners) listener(undefined)
    }
  }

  close (): void {
    clearInterval(this.#timer)
    this.#watched.clear()
  }

  /** One script per topic this node holds entries in or watches: renews, reaps, repairs. */
  #renew (): void {
    if (this.#renewing || this.#commands.status !== 'ready') return
    this.#renewing = true
    const topics = new Set([...this.#own.keys(), ...this.#watched.keys(), ...this.#dirty])
    Promise.all([...topics].map(async (topic) => {
      if (this.#dirty.delete(topic)) {
        await this.#sync(topic).catch(() => this.#dirty.add(topic))
        return
      }
      const holding = this.#own.has(topic)
      // A tick whose answer was lost may have renewed a lease Redis had lost: its entries are
      // written again next round, since no later tick would find the lease missing.
      const missing = await this.#run<number>('frtPresenceTick', topic, [holding ? '1' : '0']).catch(() => holding ? 1 : 0)
      if (missing === 1) await this.#sync(topic).catch(() => this.#dirty.add(topic))
    })).catch((err: unknown) => this.#warn({ err }, 'broker.presence_renew_failed')).finally(() => { this.#renewing = false })
  }

  async #sync (topic: string): Promise<void> {
    const own = [...(this.#own.get(topic)?.values() ?? [])]
    await this.#run('frtPresenceSync', topic, own.map((entry) => this.#encode(entry)))
  }

  async #run<T> (command: PresenceCommand, topic: string, args: Array<string | number>): Promise<T> {
    const keys = [`${this.#prefix}{${topic}}:presence`, `${this.#prefix}{${topic}}:leases`]
    return await runScript<T>(this.#commands, command, [...keys, this.node, this.#leaseMs, this.#channel(topic), ...args])
  }

  #channel (topic: string): string {
    return `${this.#prefix}{${topic}${CHANNEL_SUFFIX}`
  }

  #notified (channel: string, payload: string): void {
    if (!channel.endsWith(CHANNEL_SUFFIX)) return
    const watched = this.#watched.get(channel.slice(this.#prefix.length + 1, -CHANNEL_SUFFIX.length))
    if (watched === undefined) return
    const diff = parseChange(payload)
    if (diff === undefined) return
    for (const listener of watched.listeners) listener(diff)
  }

  #encode (entry: PresenceEntry): string {
    return JSON.stringify([entry.connection, this.node, entry.user, entry.info])
  }
}

function decode (value: string): PresenceEntry | undefined {
  try {
    return entryOf(JSON.parse(value))
  } catch {
    return undefined
  }
}

/** `[connection, node, user, info]`, as `#encode` wrote it. */
function entryOf (value: unknown): PresenceEntry | undefined {
  if (!Array.isArray(value)) return undefined
  const [connection, , user, info] = value as unknown[]
  if (typeof connection !== 'string' || typeof user !== 'string' || typeof info !== 'string') return undefined
  return { connection, user, info }
}

function parseChange (payload: string): PresenceDiff | undefined {
  let change: { j?: unknown, l?: unknown }
  try {
    change = JSON.parse(payload) as { j?: unknown, l?: unknown }
  } catch {
    return undefined
  }
  return { joins: entriesOf(change.j), leaves: entriesOf(change.l) }
}

function entriesOf (values: unknown): PresenceEntry[] {
  if (!Array.isArray(values)) return []
  const entries: PresenceEntry[] = []
  for (const value of values) {
    const entry = entryOf(value)
    if (entry !== undefined) entries.push(entry)
  }
  return entries
}
