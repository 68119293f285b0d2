import type { PresenceEntry } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { ErrorCode } from '../protocol/codes.js'
import { RealtimeError } from '../messages/realtime-error.js'
import type { PresenceHub } from './hub.js'

/**
 * A subscription's part in its topic's presence: its entry, when the connection is a member,
 * and whether it hears the topic's changes. Every join it made is matched by one leave.
 */
export class PresenceMembership {
  readonly entry: PresenceEntry | undefined
  readonly watch: boolean
  #joined = false
  #watching = false

  constructor (entry: PresenceEntry | undefined, watch: boolean) {
    this.entry = entry
    this.watch = watch
  }

  /** Watches first, so a watcher always hears its own join, as every other watcher does. */
  async enter (presence: PresenceHub, connection: Connection, topic: string): Promise<void> {
    if (this.watch) {
      this.#watching = true
      await presence.watch(connection, topic)
    }
    if (this.entry !== undefined && this.#watching === this.watch) {
      this.#joined = true
      await presence.join(topic, this.entry)
    }
  }

  exit (presence: PresenceHub, connection: Connection, topic: string): void {
    if (this.#joined && this.entry !== undefined) presence.leave(topic, this.entry)
    if (this.#watching) presence.unwatch(connection, topic)
    this.#joined = false
    this.#watching = false
  }
}

/**
 * What `$subscribe` makes of presence for `connection`: a member on every topic the route's
 * `presence.authorize` accepts, and a watcher when it asked (`FORBIDDEN` where it may not).
 * The member's info is built and serialized here, before anything is subscribed, so a member
 * function that throws fails this `$subscribe` alone.
 */
export async function membershipFor (connection: Connection, topic: string, watch: boolean): Promise<PresenceMembership | undefined> {
  const declared = connection.declared.presence
  if (declared === undefined || !(await declared.authorize(topic, connection))) {
    if (watch) throw new RealtimeError(ErrorCode.FORBIDDEN, 'no presence on this topic for this connection')
    return undefined
  }
  const value = await declared.member(connection, topic)
  if (!declared.validator.check(value)) throw new Error(`presence member info does not fit the route's info schema: ${JSON.stringify(declared.validator.explain(value))}`)
  const info = declared.serialize(value)
  // A schema that admits `undefined` (Type.Unknown) lets through what no JSON can hold.
  if (info === undefined || info === 'undefined') throw new Error('presence member info must be a JSON value')
  return new PresenceMembership({ connection: connection.id, user: String(connection.identity?.id ?? connection.id), info }, watch)
}

/** Whether `connection` may read the topic's presence, for `$presence`: `FORBIDDEN` if not. */
export async function assertPresenceReadable (connection: Connection, topic: string): Promise<void> {
  const declared = connection.declared.presence
  if (declared === undefined || !(await declared.authorize(topic, connection))) {
    throw new RealtimeError(ErrorCode.FORBIDDEN, 'no presence on this topic for this connection')
  }
}
