import type { PresenceDiff, PresenceEntry, PresenceListener } from './broker.js'

/**
 * Presence for one node: every entry lives here, so a change reaches the listeners as it is
 * made, and there is no lease: a node that dies takes its presence with it.
 */
export class MemoryPresence {
  readonly #entries = new Map<string, Map<string, PresenceEntry>>()
  readonly #listeners = new Map<string, Set<PresenceListener>>()

  update (topic: string, diff: PresenceDiff): void {
    let entries = this.#entries.get(topic)
    const changed: PresenceDiff = { joins: [], leaves: [] }
    for (const entry of diff.leaves) {
      if (entries?.delete(entry.connection) === true) changed.leaves.push(entry)
    }
    for (const entry of diff.joins) {
      if (entries === undefined) {
        entries = new Map()
        this.#entries.set(topic, entries)
      }
      if (entries.get(entry.connection)?.info === entry.info) continue
      entries.set(entry.connection, entry)
      changed.joins.push(entry)
    }
    if (entries?.size === 0) this.#entries.delete(topic)
    if (changed.joins.length === 0 && changed.leaves.length === 0) return
    for (const listener of this.#listeners.get(topic) ?? []) listener(changed)
  }

  read (topic: string): PresenceEntry[] {
    return [...(this.#entries.get(topic)?.values() ?? [])]
  }

  watch (topic: string, listener: PresenceListener): void {
    let listeners = this.#listeners.get(topic)
    if (listeners === undefined) {
      listeners = new Set()
      this.#listeners.set(topic, listeners)
    }
    listeners.add(listener)
  }

  unwatch (topic: string, listener: PresenceListener): void {
    const listeners = this.#listeners.get(topic)
    if (listeners === undefined || !listeners.delete(listener) || listeners.size > 0) return
    this.#listeners.delete(topic)
  }

  clear (): void {
    this.#entries.clear()
    this.#listeners.clear()
  }
}
