import type { PresenceDiff, PresenceEntry } from '../broker/broker.js'

interface Change {
  entry: PresenceEntry
  /** Whether subscribers last saw the entry present. */
  before: boolean
  after: boolean
}

/**
 * The net change of a topic's presence since subscribers were last told: an entry that joins
 * and leaves within one window is never sent, and a leave followed by a join of the same entry
 * (a resync that briefly missed it) cancels out.
 */
export class PendingDiff {
  readonly #changes = new Map<string, Change>()

  get empty (): boolean {
    return this.#changes.size === 0
  }

  /** `before`: whether the entry was present before this change, as the view held it. */
  record (entry: PresenceEntry, before: boolean, after: boolean): void {
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
      if (after && !before) diff.joins.push(entry)
      else if (before && !after) diff.leaves.push(entry)
    }
    this.#changes.clear()
    return diff
  }
}
