import { randomBytes } from 'node:crypto'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { TopicEntry } from './broker/broker.js'
import { DEFAULTS } from './defaults.js'
import { FRT_ERR_UNKNOWN_EVENT } from './errors.js'
import { RefusalCounter, TokenBucket } from './limits.js'
import { CloseCode, errorFrame, eventFrame, replyFrame, type MessageId, type RealtimeErrorOptions } from './protocol.js'
import type { CompiledRoute } from './route-table.js'
import type { EventSchemas, RealtimeConnection } from './types.js'

/** A connection's state on one topic. */
export interface Subscription {
  /** Highest offset sent; anything at or below it is a duplicate and dropped. */
  lastOffset: string
  /** Entries that arrived while the subscription was being set up, sent once it goes live. */
  pending: TopicEntry[] | null
  /** History to replay when the subscription goes live. */
  replay: TopicEntry[]
}

const TEXT_FRAME = { binary: false }
const MAX_CLOSE_REASON_BYTES = 123
const OPEN = 1

/**
 * One open WebSocket: writes frames (corked per tick), holds the message budget and topic
 * subscriptions, and closes in one place.
 */
export class Connection<E extends EventSchemas = EventSchemas> implements RealtimeConnection<E> {
  readonly id = randomBytes(12).toString('base64url')
  readonly route: string
  readonly request: FastifyRequest
  readonly log: FastifyBaseLogger
  readonly compiledRoute: CompiledRoute
  readonly subscriptions = new Map<string, Subscription>()
  readonly openedAt = performance.now()
  /** Cleared by each heartbeat ping, set by the pong; still clear at the next ping means dead. */
  alive = true
  /** Handlers running for this connection, awaited on drain. */
  inflight = 0
  /** Whether `ws.message` lines are written: decided once, not paid for per message. */
  readonly logsEachMessage: boolean
  readonly #socket: WebSocket
  readonly #stream: Socket | undefined
  readonly #bucket: TokenBucket | undefined
  readonly #refusals: RefusalCounter
  #corked = false

  constructor (socket: WebSocket, request: FastifyRequest, route: CompiledRoute) {
    this.#socket = socket
    this.request = request
    this.compiledRoute = route
    this.route = route.url
    this.log = request.log.child({ connectionId: this.id, route: route.url })
    this.logsEachMessage = this.log.level === 'debug' || this.log.level === 'trace'
    // The upgraded TCP socket: corking it batches every frame written in one tick into one write.
    const stream = request.raw.socket as Socket | undefined
    this.#stream = typeof stream?.cork === 'function' ? stream : undefined
    const rate = route.messagesPerSecond
    this.#bucket = rate > 0 ? new TokenBucket(rate) : undefined
    this.#refusals = new RefusalCounter(DEFAULTS.abuseWindowMs, Math.max(DEFAULTS.abuseMinRefusals, 2 * rate))
  }

  get topics (): ReadonlySet<string> {
    return new Set(this.subscriptions.keys())
  }

  get isOpen (): boolean {
    return this.#socket.readyState === OPEN
  }

  send (event: keyof E & string, data: unknown): void {
    const compiled = this.compiledRoute.events.get(event)
    if (compiled === undefined) throw new FRT_ERR_UNKNOWN_EVENT(event, this.route)
    this.write(eventFrame(event, compiled.serialize(data)))
  }

  sendReply (id: MessageId, body: string | undefined): void {
    this.write(replyFrame(id, body))
  }

  sendError (id: MessageId | undefined, code: string, message: string, options?: RealtimeErrorOptions): void {
    this.write(errorFrame(id, code, message, options))
  }

  /** Writes a frame if the socket is open; frames written in the same tick leave in one write. */
  write (frame: string | Buffer): void {
    if (this.#socket.readyState !== OPEN) return
    if (!this.#corked && this.#stream !== undefined) {
      this.#corked = true
      this.#stream.cork()
      process.nextTick(uncork, this)
    }
    this.#socket.send(frame, TEXT_FRAME)
  }

  /** Milliseconds until the budget allows another message; 0 when this one may proceed. */
  takeToken (): number {
    return this.#bucket === undefined ? 0 : this.#bucket.take()
  }

  /** Records a refused message; true when refusals have become sustained abuse. */
  recordRefusal (): boolean {
    return this.#refusals.record()
  }

  close (code: number = CloseCode.NORMAL, reason = ''): void {
    this.#socket.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES))
  }

  terminate (): void {
    this.#socket.terminate()
  }

  ping (): void {
    if (this.#socket.readyState === OPEN) this.#socket.ping()
  }

  uncork (): void {
    this.#corked = false
    this.#stream?.uncork()
  }
}

function uncork (connection: Connection): void {
  connection.uncork()
}

function truncateUtf8 (text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  let cut = Buffer.from(text).subarray(0, maxBytes).toString('utf8')
  // A multi-byte character split at the boundary decodes to U+FFFD (3 bytes): drop it.
  while (Buffer.byteLength(cut) > maxBytes) cut = cut.slice(0, -1)
  return cut
}
