import type { FastifyBaseLogger } from 'fastify'
import type { Broker, PresenceDiff, PresenceEntry, PresenceListener } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { SharedText } from '../protocol/framing.js'
import { PRESENCE_DIFF_TYPE, presenceDiffFrame, presenceReplyBody } from '../protocol/frames.js'
import type { RealtimeMetrics } from '../telemetry/metrics.js'
import { PendingDiff } from './pending-diff.js'
import { PresenceView } from './view.js'

/** How soon a failed resync of a topic's view is tried again. */
const RESYNC_RETRY_MS = 1_000

/**
 * A topic that keeps changing (a reconnect storm) has its window doubled after each frame that
 * carried more than one change, up to this many times `windowMs`: its watchers then get a frame
 * a second rather than ten. A frame with one change, or a quiet window, brings it back.
 */
export const MAX_WINDOW_FACTOR = 10

interface WatchedTopic {
  /** Every entry of the topic's presence, across nodes, as this node last heard. */
  view: PresenceView
  watchers: Set<Connection>
  /** What the watchers have not been told yet. */
  pending: PendingDiff
  timer: ReturnType<typeof setTimeout> | undefined
  /** The current window: `windowMs`, widened while the topic keeps changing. */
  windowMs: number
  /** When its last frame went, to tell a storm from a change after a quiet spell. */
  flushedAt: number
  /** Diffs that arrived while the view was being (re)read: applied after it, in order. */
  held: PresenceDiff[] | undefined
  /** Settles when the first read of the view is done. */
  ready: Promise<void>
  /** The broker asked for a read while one was running: that one may have missed what it meant. */
  reread: boolean
  listener: PresenceListener
}

/**
 * The node's side of presence: its connections' entries go to the broker, and for each topic
 * some local connection watches, one broker listener keeps a view of every node's entries.
 * Changes reach the watchers coalesced over `windowMs` (widened while the topic keeps changing),
 * one frame per topic, the same bytes for every socket: a room that a thousand members join
 * within a second costs each member a handful of frames, not a thousand.
 */
export class PresenceHub {
  readonly #broker: Broker
  readonly #log: FastifyBaseLogger
  readonly #metrics: RealtimeMetrics
  readonly #windowMs: number
  readonly #watched = new Map<string, WatchedTopic>()
  /** Leaves on their way to the broker: closing waits for them, so a drained node's members leave at once. */
  readonly #leaving = new Set<Promise<void>>()
  #members = 0

  constructor (broker: Broker, log: FastifyBaseLogger, metrics: RealtimeMetrics, windowMs: number) {
    this.#broker = broker
    this.#log = log
    this.#metrics = metrics
    this.#windowMs = windowMs
    metrics.trackPresence(() => this.#members)
  }

  /**
   * Every join, failed or not, is matched by one `leave`: a join the broker refused may still be
   * held by it as this node's own (Redis keeps it to write again), and the leave withdraws it.
   */
  async join (topic: string, entry: PresenceEntry): Promise<void> {
    this.#members++
    // Seen here at once, before the broker's round trip, so a leave that follows quickly is
    // seen after it: the broker's own word on either is then a no-op.
    this.#watched.get(topic)?.listener({ joins: [entry], leaves: [] })
    await this.#broker.updatePresence(topic, { joins: [entry], leaves: [] })
  }

  /** Never fails: a leave the broker could not take is retried by the broker once it is back. */
  leave (topic: string, entry: PresenceEntry): void {
    this.#members--
    this.#watched.get(topic)?.listener({ joins: [], leaves: [entry] })
    const leaving = this.#broker.updatePresence(topic, { joins: [], leaves: [entry] })
      .catch((err: unknown) => this.#log.warn({ err, topic }, 'ws.presence_leave_failed'))
      .finally(() => this.#leaving.delete(leaving))
    this.#leaving.add(leaving)
  }

  /** `connection` is told of the topic's changes from now on, once the view is read. */
  async watch (connection: Connection, topic: string): Promise<void> {
    let watched = this.#watched.get(topic)
    if (watched === undefined) {
      const created: WatchedTopic = {
        view: new PresenceView(),
        watchers: new Set(),
        pending: new PendingDiff(),
        timer: undefined,
        windowMs: this.#windowMs,
        flushedAt: 0,
        held: [],
        ready: Promise.resolve(),
        reread: false,
        listener: (diff) => this.#heard(topic, created, diff)
      }
      created.ready = this.#broker.watchPresence(topic, created.listener).then(async () => await this.#read(topic, created))
      created.ready.catch(() => {
        if (this.#watched.get(topic) === created) this.#forget(topic, created)
      })
      this.#watched.set(topic, created)
      watched = created
    }
    watched.watchers.add(connection)
    try {
      await watched.ready
    } catch (err) {
      watched.watchers.delete(connection)
      throw err
    }
  }

  unwatch (connection: Connection, topic: string): void {
    const watched = this.#watched.get(topic)
    if (watched === undefined || !watched.watchers.delete(connection) || watched.watchers.size > 0) return
    this.#forget(topic, watched)
  }

  /** Once its setup settled, however it went, the broker stops telling this view anything. */
  #forget (topic: string, watched: WatchedTopic): void {
    this.#watched.delete(topic)
    clearTimeout(watched.timer)
    watched.ready
      .catch(() => {})
      .then(async () => await this.#broker.unwatchPresence(topic, watched.listener))
      .catch((err: unknown) => this.#log.warn({ err, topic }, 'ws.broker_unwatch_failed'))
  }

  /**
   * The `data` of a `$presence` reply (`limit` undefined: the counts only): from this node's view
   * when some connection here watches the topic, else from one broker read.
   */
  async replyBody (topic: string, limit: number | undefined): Promise<string> {
    const watched = this.#watched.get(topic)
    if (watched !== undefined) {
      try {
        await watched.ready
        if (watched.held === undefined) return watched.view.replyBody(topic, limit)
      } catch {}
    }
    return presenceReplyBody(topic, await this.#broker.presence(topic), limit)
  }

  /** Waits for leaves still on their way to the broker. */
  async close (): Promise<void> {
    for (const watched of this.#watched.values()) clearTimeout(watched.timer)
    await Promise.all(this.#leaving)
  }

  /** (Re)reads the whole view; what changed against the old one is sent like any diff. */
  async #read (topic: string, watched: WatchedTopic): Promise<void> {
    watched.held ??= []
    let entries: PresenceEntry[]
    try {
      entries = await this.#broker.presence(topic)
    } catch (err) {
      // What was heard meanwhile still counts; the caller decides whether to read again.
      const held = watched.held
      watched.held = undefined
      for (const diff of held) this.#applyDiff(watched, diff)
      this.#schedule(topic, watched)
      throw err
    }
    const fresh = new Map(entries.map((entry) => [entry.connection, entry]))
    for (const entry of [...watched.view.entries()]) {
      if (!fresh.has(entry.connection)) this.#apply(watched, entry, false)
    }
    for (const entry of fresh.values()) this.#apply(watched, entry, true)
    const held = watched.held
    watched.held = undefined
    for (const diff of held) this.#applyDiff(watched, diff)
    this.#schedule(topic, watched)
    if (watched.reread) {
      watched.reread = false
      this.#resync(topic, watched)
    }
  }

  #heard (topic: string, watched: WatchedTopic, diff: PresenceDiff | undefined): void {
    if (this.#watched.get(topic) !== watched) return
    if (diff === undefined) {
      if (watched.held === undefined) this.#resync(topic, watched)
      else watched.reread = true
      return
    }
    if (watched.held !== undefined) {
      watched.held.push(diff)
      return
    }
    this.#applyDiff(watched, diff)
    this.#schedule(topic, watched)
  }

  /** Reads the view afresh, and again a little later while that fails: until then it may be stale. */
  #resync (topic: string, watched: WatchedTopic): void {
    this.#read(topic, watched).catch((err: unknown) => {
      this.#log.warn({ err, topic }, 'ws.presence_resync_failed')
      setTimeout(() => {
        if (this.#watched.get(topic) === watched && watched.held === undefined) this.#resync(topic, watched)
      }, RESYNC_RETRY_MS).unref()
    })
  }

  #applyDiff (watched: WatchedTopic, diff: PresenceDiff): void {
    for (const entry of diff.leaves) this.#apply(watched, entry, false)
    for (const entry of diff.joins) this.#apply(watched, entry, true)
  }

  #apply (watched: WatchedTopic, entry: PresenceEntry, present: boolean): void {
    const held = watched.view.get(entry.connection)
    // A join of an entry already there changes it only when its info changed.
    if (held === undefined ? !present : present && held.info === entry.info) return
    if (present) watched.view.set(entry)
    else watched.view.delete(entry.connection)
    watched.pending.record(entry, held, present)
  }

  #schedule (topic: string, watched: WatchedTopic): void {
    if (watched.pending.empty || watched.timer !== undefined) return
    if (performance.now() - watched.flushedAt > 2 * watched.windowMs) watched.windowMs = this.#windowMs
    watched.timer = setTimeout(() => this.#flush(topic, watched), watched.windowMs)
  }

  /** One frame for every watcher, holding the window's net change. */
  #flush (topic: string, watched: WatchedTopic): void {
    watched.timer = undefined
    const diff = watched.pending.take()
    const changes = diff.joins.length + diff.leaves.length
    watched.windowMs = changes > 1 ? Math.min(2 * watched.windowMs, MAX_WINDOW_FACTOR * this.#windowMs) : this.#windowMs
    watched.flushedAt = performance.now()
    if (changes === 0) return
    this.#metrics.presenceChanged(diff.joins.length, diff.leaves.length)
    const text = new SharedText(presenceDiffFrame(topic, diff))
    for (const connection of watched.watchers) connection.writeShared(text, PRESENCE_DIFF_TYPE)
  }
}
