/*
 * The frames of PROTOCOL.md as code: the subprotocol, the names and ids a frame may carry, and
 * the builders of every server frame. Anything the server puts on the wire is shaped here.
 */

/** The only protocol version this server speaks (`Sec-WebSocket-Protocol`). */
export const SUBPROTOCOL = 'realtime.v1'

/** Prefix of `Sec-WebSocket-Protocol` entries that carry a credential rather than a version. */
export const BEARER_PROTOCOL_PREFIX = 'bearer.'

/** A W3C `traceparent` value: version, trace id, parent id and flags, each captured. */
export const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** Extra fields an error frame may carry. */
export interface RealtimeErrorOptions {
  /** Machine-readable specifics, e.g. validation paths. Never raw client input. */
  details?: unknown
  /** When the client may retry, for `RATE_LIMITED` and `UNAVAILABLE`. */
  retryAfterMs?: number
}

/** A message id as the protocol allows it: a string of 1–64 chars or a safe integer. */
export type MessageId = string | number

export function isValidMessageId (id: unknown): id is MessageId {
  if (typeof id === 'string') return id.length > 0 && id.length <= 64
  return Number.isSafeInteger(id)
}

/** An idempotency key: short, and safe in a Redis key and a log line as it is. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9_.:-]{1,64}$/

/** Longest topic name, in characters. */
export const MAX_TOPIC_LENGTH = 256

/** Most users one `$presence` reply may list (its `limit`). */
export const MAX_PRESENCE_LIMIT = 1_000

/** Names of declared message types and events: safe to embed in JSON without escaping. */
export const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/

export function welcomeFrame (data: {
  connectionId: string
  /** The identity's id, when the connection has one: who the server takes this client for. */
  user?: string
  heartbeatMs: number
  limits: { maxPayload: number, messagesPerSecond: number }
  /** When the connection's credentials expire (epoch ms), so a client can `$refresh` ahead. */
  expiresAt?: number
  /** The topics the server subscribed the connection to, each where it stood then. */
  subscriptions?: Array<{ topic: string, offset: string, epoch: string }>
}): string {
  return JSON.stringify({ type: '$welcome', data })
}

/** `body` is already-serialized JSON, or undefined for a reply without data. */
export function replyFrame (id: MessageId, body: string | undefined): string {
  const idJson = typeof id === 'number' ? String(id) : JSON.stringify(id)
  return body === undefined
    ? '{"type":"$reply","id":' + idJson + '}'
    : '{"type":"$reply","id":' + idJson + ',"data":' + body + '}'
}

export function errorFrame (id: MessageId | undefined, code: string, message: string, options: RealtimeErrorOptions = {}): string {
  return JSON.stringify({
    type: '$error',
    id,
    error: { code, message, details: options.details, retryAfterMs: options.retryAfterMs }
  })
}

/** An event sent to one connection; `event` is a declared name, so it needs no escaping. */
export function eventFrame (event: string, body: string): string {
  return '{"type":"' + event + '","data":' + body + '}'
}

/** An event published on a topic: built once per delivery, the same bytes for every socket. */
export function topicEventFrame (event: string, topic: string, offset: string, body: string): string {
  return '{"type":"' + event + '","topic":' + JSON.stringify(topic) + ',"offset":"' + offset + '","data":' + body + '}'
}

/** The frame that tells a topic's presence watchers who joined and left. */
export const PRESENCE_DIFF_TYPE = '$presence.diff'

/** An entry as it leaves the server: `info` is JSON text its route's schema serialized. */
interface PresenceEntryText {
  connection: string
  user: string
  info: string
}

function joinText (entry: PresenceEntryText): string {
  return '{"user":' + JSON.stringify(entry.user) + ',"connection":' + JSON.stringify(entry.connection) + ',"info":' + entry.info + '}'
}

function leaveText (entry: PresenceEntryText): string {
  return '{"user":' + JSON.stringify(entry.user) + ',"connection":' + JSON.stringify(entry.connection) + '}'
}

/** Built once per topic and window: every watcher gets the same bytes.. */
export function presenceDiffFrame (topic: string, diff: { joins: PresenceEntryText[], leaves: PresenceEntryText[] }): string {
  return '{"type":"' + PRESENCE_DIFF_TYPE + '","topic":' + JSON.stringify(topic) +
    ',"data":{"joins":[' + diff.joins.map(joinText).join(',') + '],"leaves":[' + diff.leaves.map(leaveText).join(',') + ']}}'
}

/** One user of a `$presence` reply, with every entry it has in the topic. */
export function presenceMemberText (user: string, entries: Iterable<PresenceEntryText>): string {
  const connections: string[] = []
  for (const entry of entries) connections.push('{"connection":' + JSON.stringify(entry.connection) + ',"info":' + entry.info + '}')
  return '{"user":' + JSON.stringify(user) + ',"connections":[' + connections.join(',') + ']}'
}

/**
 * The `data` of a `$presence` reply from its parts: the totals, and `members` (already
 * `presenceMemberText`s, at most the limit asked for) unless only the counts were asked for.
 */
export function presenceReplyText (topic: string, users: number, connections: number, members: string[] | undefined): string {
  const counts = '{"topic":' + JSON.stringify(topic) + ',"users":' + users + ',"connections":' + connections
  return members === undefined ? counts + '}' : counts + ',"members":[' + members.join(',') + ']}'
}

/** The `data` of a `$presence` reply: `members` holds at most `limit` users, each with all its connections. */
export function presenceReplyBody (topic: string, entries: Iterable<PresenceEntryText>, limit: number | undefined): string {
  const byUser = new Map<string, PresenceEntryText[]>()
  let connections = 0
  for (const entry of entries) {
    connections++
    const held = byUser.get(entry.user)
    if (held === undefined) byUser.set(entry.user, [entry])
    else held.push(entry)
  }
  if (limit === undefined) return presenceReplyText(topic, byUser.size, connections, undefined)
  const members: string[] = []
  for (const [user, held] of byUser) {
    if (members.length >= limit) break
    members.push(presenceMemberText(user, held))
  }
  return presenceReplyText(topic, byUser.size, connections, members)
}
