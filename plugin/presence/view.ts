import type { PresenceEntry } from '../broker/broker.js'
import { presenceMemberText, presenceReplyText } from '../protocol/frames.js'

interface ViewedUser {
  entries: Map<string, PresenceEntry>
  /** Its part of a `$presence` reply, made when first asked for after a change. */
  text: string | undefined
}

/**
 * A node's copy of one topic's presence, kept grouped by user with each user's part of a reply
 * made once per change: joiners of a busy room each get the members with their subscription,
 * and building that from scratch for each was most of what watching cost.
 */
export class PresenceView {
  readonly #entries = new Map<string, PresenceEntry>()
  readonly #users = new Map<string, ViewedUser>()

  get (connection: string): PresenceEntry | undefined {
    return this.#entries.get(connection)
  }

  entries (): IterableIterator<PresenceEntry> {
    return this.#entries.values()
  }

  set (entry: PresenceEntry): void {
    const previous = this.#entries.get(entry.connection)
    if (previous !== undefined && previous.user !== entry.user) this.delete(entry.connection)
    this.#entries.set(entry.connection, entry)
    let user = this.#users.get(entry.user)
    if (user === undefined) {
      user = { entries: new Map(), text: undefined }
      this.#users.set(entry.user, user)
    }
    user.entries.set(entry.connection, entry)
    user.text = undefined
  }

  delete (connection: string): void {
    const entry = this.#entries.get(connection)
    if (entry === undefined) return
    this.#entries.delete(connection)
    const user = this.#users.get(entry.user)
    if (user === undefined) return
    user.entries.delete(connection)
    user.text = undefined
    if (user.entries.size === 0) this.#users.delete(entry.user)
  }

  /** The `data` of a `$presence` reply; `limit` undefined gives the counts only. */
  replyBody (topic: string, limit: number | undefined): string {
    if (limit === undefined) return presenceReplyText(topic, this.#users.size, this.#entries.size, undefined)
    const members: string[] = []
    for (const [id, user] of this.#users) {
      if (members.length >= limit) break
      user.text ??= presenceMemberText(id, user.entries.values())
      members.push(user.text)
    }
    return presenceReplyText(topic, this.#users.size, this.#entries.size, members)
  }
}
