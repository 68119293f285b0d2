/** One user in a topic's presence: present once, with an entry for each of its connections. */
export interface PresenceMember<Info> {
  user: string
  /** The user's connections in the topic, by connection id, with what each shows of itself. */
  connections: ReadonlyMap<string, Info>
}

/** What a presence callback hears: the current members, and who came and went since the last call. */
export interface PresenceUpdate<Info> {
  topic: string
  /** Every member, by user id. */
  members: ReadonlyMap<string, PresenceMember<Info>>
  /** Users that were absent and now have a connection in the topic. */
  joined: Array<PresenceMember<Info>>
  /** Users whose last connection left. */
  left: Array<PresenceMember<Info>>
}

/** The `$presence` reply: counts, and the members unless only the counts were asked for. */
export interface PresenceReply<Info> {
  topic: string
  /** Users present, across every node. */
  users: number
  connections: number
  /** At most the `limit` asked for (100 by default); `users` says how many there are. */
  members?: Array<{ user: string, connections: Array<{ connection: string, info: Info }> }>
}

/** A `$presence.diff` frame's data. */
export interface PresenceDiffData<Info> {
  joins: Array<{ user: string, connection: string, info: Info }>
  leaves: Array<{ user: string, connection: string }>
}

/**
 * A topic's members as the client knows them: the snapshot its `$subscribe` answer carried, then every diff.
 * Diffs that arrive before the snapshot wait for it; applied after it, a join it already holds
 * or a leave of what it lacks changes nothing, so none is lost or counted twice.
 */
export class PresenceState<Info> {
  readonly #topic: string
  readonly #members = new Map<string, Map<string, Info>>()
  #held: Array<PresenceDiffData<Info>> | undefined = []

  constructor (topic: string) {
    this.#topic = topic
  }

  /** A new subscription (after a reconnect): diffs wait for the next snapshot. */
  resubscribed (): void {
    this.#held = []
  }

  /** Replaces the members with a snapshot, then applies the diffs that waited for it. */
  snapshot (reply: PresenceReply<Info>): PresenceUpdate<Info> {
    const before = this.#users()
    this.#members.clear()
    for (const member of reply.members ?? []) {
      this.#members.set(member.user, new Map(member.connections.map(({ connection, info }) => [connection, info])))
    }
    const held = this.#held ?? []
    this.#held = undefined
    for (const diff of held) this.#apply(diff)
    return this.#update(before)
  }

  /** Applies a diff; `undefined` while it waits for the snapshot. */
  diff (data: PresenceDiffData<Info>): PresenceUpdate<Info> | undefined {
    if (this.#held !== undefined) {
      this.#held.push(data)
      return undefined
    }
    const before = this.#users()
    this.#apply(data)
    return this.#update(before)
  }

  #apply (data: PresenceDiffData<Info>): void {
    for (const { user, connection } of data.leaves) {
      const connections = this.#members.get(user)
      if (connections === undefined) continue
      connections.delete(connection)
      if (connections.size === 0) this.#members.delete(user)
    }
    for (const { user, connection, info } of data.joins) {
      let connections = this.#members.get(user)
      if (connections === undefined) {
        connections = new Map()
        this.#members.set(user, connections)
      }
      connections.set(connection, info)
    }
  }

  #users (): Map<string, PresenceMember<Info>> {
    const users = new Map<string, PresenceMember<Info>>()
    for (const [user, connections] of this.#members) users.set(user, { user, connections: new Map(connections) })
    return users
  }

  #update (before: Map<string, PresenceMember<Info>>): PresenceUpdate<Info> {
    const members = this.#users()
    return {
      topic: this.#topic,
      members,
      joined: [...members.values()].filter((member) => !before.has(member.user)),
      left: [...before.values()].filter((member) => !members.has(member.user))
    }
  }
}
