import type { PresenceDiff, PresenceEntry } from '../broker/broker.js'

interface Change {
  entry: PresenceEntry
  /** The entry as subscribers last saw it; undefined when they saw it absent. */
  before: PresenceEntry | undefined
  after: boolean
}

/**
 * The net change of a topic's presence since subscribers were last told: an entry that joins
 * and leaves within one window is never sent, a leave followed by a join of the same entry
 * (a resync that briefly missed it) cancels out, and an entry whose info changed joins again.
 */
export class PendingDiff {
  readonly #changes = new Map<string, Change>()

  get empty (): boolean {
    return this.#changes.size === 0
  }

  /** `before`: the entry as the view held it before this change, if it held it. */
  record (entry: PresenceEntry, before: PresenceEntry | undefined, after: boolean): void {
    const change = this.#changes.get(entry.connection)
    if (change === undefined) {
      this.#changes.set(entry.connection, { entry, before, after })
      return
    }
    change.after = after
    if (after) change.entry = entry
  }

  /** The joins and leaves to send, in the order their connections first changed; empties the diff. */
  take (): PresenceDiff {
    const diff: PresenceDiff = { joins: [], leaves: [] }
    for (const { entry, before, after } of this.#changes.values()) {
      if (after && (before === undefined || before.info !== entry.info)) diff.joins.push(entry)
      else if (before !== undefined && !after) diff.leaves.push(entry)
    }
    this.#changes.clear()
    return diff
  }
}
