import type { Socket } from 'node:net'
import type { SpanContext } from '@opentelemetry/api'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { nextConnectionId } from './connection-id.js'
import { textFrame, textFrameOf, type SharedText } from '../protocol/framing.js'
import type { ClientBudget } from '../messages/client-budgets.js'
import { DEFAULTS } from '../defaults.js'
import { FRT_ERR_UNKNOWN_EVENT } from '../errors.js'
import { compactFragments, fragmentReceiverOf, type FragmentReceiver } from './fragment-guard.js'
import { corkForTurn } from './turn-cork.js'
import { MessageBudget } from '../messages/budget.js'
import { CloseCode, closeCodeEntry } from '../protocol/codes.js'
import { errorFrame, eventFrame, replyFrame, type MessageId, type RealtimeErrorOptions } from '../protocol/frames.js'
import type { CompiledRoute } from '../messages/compile.js'
import type { ServedRoute } from '../instance.js'
import type { Subscription } from '../topics/subscription.js'
import type { EventSchemas, Identity, RealtimeConnection } from '../types.js'

/** Limits a connection enforces on itself. */
export interface ConnectionLimits {
  maxBufferedBytes: number
  /** Whether permessage-deflate may be negotiated: then ws alone may frame what this socket sends. */
  perMessageDeflate: boolean
}

const TEXT_FRAME = { binary: false }
/** Where the TCP socket keeps its connection, for listeners shared by every socket. */
const kConnection = Symbol('fastify-realtime.stream-connection')
type ConnectionStream = Socket & { [kConnection]?: Connection }
const MAX_CLOSE_REASON_BYTES = 123
const OPEN = 1
const CLOSED = 3

/**
 * One open WebSocket: writes frames (corked per tick, refused past the buffer limit), holds the
 * message budgets and topic subscriptions, and closes in one place. Idle connections are the
 * common case, so anything not every connection needs (logger, per-type budgets) is made on
 * first use.
 */
export class Connection<E extends EventSchemas = EventSchemas> implements RealtimeConnection<E> {
  readonly id = nextConnectionId()
  readonly route: string
  readonly request: FastifyRequest
  #identity: Identity | undefined
  /** What the route declared: schemas, authorizers, budgets. */
  readonly declared: CompiledRoute
  /** The route as this instance serves it: its connections, its metrics, the instance. */
  readonly served: ServedRoute
  /** Whole milliseconds of performance.now(): small integers, which V8 stores without a box. */
  readonly openedAt = Math.floor(performance.now())
  /** When the last frame arrived, for the idle timeout (whole ms of performance.now()). */
  lastMessageAt = this.openedAt
  /** The upgrade's HTTP span, which messages sent without a `traceparent` link to. */
  upgradeSpan: SpanContext | undefined = undefined
  /** Cleared by each heartbeat ping, set by the pong; still clear at the next ping means dead. */
  alive = true
  /** The budget this connection shares with the other connections of its client, if any. */
  clientBudget: ClientBudget | undefined = undefined
  /** Set once the socket has closed: work still under way for it must not register anything. */
  closed = false
  /** When the peer began a message it has not finished (whole ms of performance.now()). */
  incompleteSince: number | undefined = undefined
  readonly #socket: WebSocket
  readonly #stream: Socket | undefined
  /** The TCP socket when frames framed here may be written to it directly. */
  readonly #framedStream: Socket | undefined
  readonly #limits: ConnectionLimits
  #budget: MessageBudget | undefined
  #log: FastifyBaseLogger | undefined
  #subscriptions: Map<string, Subscription> | undefined
  readonly #receiver: FragmentReceiver | undefined
  /** The fragments array last compacted, and how many of its entries are compact. */
  #fragments: Buffer[] | undefined
  #compactFragments = 0
  #pendingPongs = 0
  #inflight = 0
  #idleWaiters: Array<() => void> = []
  #closing = false
  #sentClose: { code: number, reason: string } | undefined

  constructor (socket: WebSocket, request: FastifyRequest, served: ServedRoute, identity: Identity | undefined, limits: ConnectionLimits) {
    this.#socket = socket
    this.request = request
    this.served = served
    this.declared = served.declared
    this.route = served.declared.url
    this.#identity = identity
    this.#limits = limits
    // The upgraded TCP socket: corking it batches every frame written in one tick into one write.
    const stream = request.raw.socket as ConnectionStream | undefined
    this.#stream = typeof stream?.cork === 'function' ? stream : undefined
    this.#receiver = fragmentReceiverOf(socket)
    if (this.#stream !== undefined) {
      // Corked around each read: ws parses a read's frames synchronously in its own 'data'
      // listener, so every reply they cause leaves in one write when the read is done.
      (this.#stream as ConnectionStream)[kConnection] = this
      this.#stream.prependListener('data', corkForRead)
      this.#stream.on('data', afterRead)
    }
    // Without permessage-deflate ws writes every frame synchronously and queues none of its own,
    // so frames written straight to the socket can neither overtake nor split one of its own
    // (close, ping). Framing here makes one chunk per frame where ws makes two.
    this.#framedStream = limits.perMessageDeflate ? undefined : this.#stream
  }

  /** The request's logger with `connectionId` and `route` bound. */
  get log (): FastifyBaseLogger {
    this.#log ??= this.request.log.child({ connectionId: this.id, route: this.route })
    return this.#log
  }

  /** Whether `ws.message` lines are written: a level check, not a per-message cost. */
  get logsEachMessage (): boolean {
    const level = this.request.log.level
    return level === 'debug' || level === 'trace'
  }

  /** Topics the server subscribed this connection to when it opened (the route's `subscriptions`). */
  serverTopics: ReadonlySet<string> | undefined

  /** Who connected; replaced by a `$refresh` with fresh credentials of the same identity. */
  get identity (): Identity | undefined {
    return this.#identity
  }

  /** Takes the identity fresh credentials established: same id, new claims and expiry. */
  refreshIdentity (identity: Identity): void {
    this.#identity = identity
  }

  /** Topic subscriptions, made on first use: most connections of a busy node hold none. */
  get subscriptions (): Map<string, Subscription> {
    this.#subscriptions ??= new Map()
    return this.#subscriptions
  }

  /** Whether this connection holds any topic, without making the map. */
  get hasSubscriptions (): boolean {
    return this.#subscriptions !== undefined && this.#subscriptions.size > 0
  }

  get topics (): ReadonlySet<string> {
    return new Set(this.#subscriptions?.keys())
  }

  get isOpen (): boolean {
    return this.#socket.readyState === OPEN
  }

  /** Bytes waiting to be written to this peer. */
  get bufferedBytes (): number {
    return this.#socket.bufferedAmount
  }

  send (event: keyof E & string, data: unknown): void {
    const compiled = this.declared.events.get(event)
    if (compiled === undefined) throw new FRT_ERR_UNKNOWN_EVENT(event, this.route)
    this.write(eventFrame(event, compiled.serialize(data)), event)
  }

  sendReply (id: MessageId, body: string | undefined): void {
    this.write(replyFrame(id, body), '$reply')
  }

  sendError (id: MessageId | undefined, code: string, message: string, options?: RealtimeErrorOptions): void {
    this.write(errorFrame(id, code, message, options), '$error')
  }

  /**
   * Writes a frame if the socket is open; frames written in the same tick leave in one write.
   * A peer whose unsent bytes exceed `maxBufferedBytes` is closed as a slow consumer instead:
   * ws buffers without limit, and one client that stops reading would grow the server unbounded.
   */
  write (payload: string | Buffer, type: string): void {
    if (!this.#writable()) return
    if (this.#framedStream === undefined) {
      this.#socket.send(payload, TEXT_FRAME)
      this.served.metrics.frameSent(type, typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length)
      return
    }
    const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length
    this.#framedStream.write(typeof payload === 'string' ? textFrameOf(payload, bytes) : textFrame(payload))
    this.served.metrics.frameSent(type, bytes)
  }

  /**
   * Writes a text many sockets get (a topic entry): framed once for all of them, or handed to ws
   * where ws must frame (permessage-deflate).
   */
  writeShared (text: SharedText, type: string): void {
    if (this.#framedStream === undefined) {
      this.write(text.payload, type)
      return
    }
    if (!this.#writable()) return
    this.#framedStream.write(text.frame)
    this.served.metrics.frameSent(type, text.payload.length)
  }

  /** Open and within its buffer limit; then corked for the rest of this turn (see turn-cork.ts). */
  #writable (): boolean {
    if (this.#socket.readyState !== OPEN) return false
    if (this.#socket.bufferedAmount > this.#limits.maxBufferedBytes) {
      this.#closeSlowConsumer()
      return false
    }
    if (this.#stream !== undefined) corkForTurn(this.#stream)
    return true
  }

  /** The connection's message budgets, made with its first message. */
  get budget (): MessageBudget {
    this.#budget ??= new MessageBudget(this.declared.messagesPerSecond, this.clientBudget)
    return this.#budget
  }

  /** Marks a handler as running, so a drain waits for it before closing. */
  handlerStarted (): void {
    this.#inflight++
  }

  handlerFinished (): void {
    if (--this.#inflight > 0) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }

  /** Resolves when no handler is running on this connection. */
  async whenIdle (): Promise<void> {
    if (this.#inflight === 0) return
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve))
  }

  close (code: number = CloseCode.NORMAL, reason = ''): void {
    this.#closing = true
    const truncated = truncateUtf8(reason, MAX_CLOSE_REASON_BYTES)
    this.#sentClose ??= { code, reason: truncated }
    this.#socket.close(code, truncated)
  }

  /**
   * ws closes by itself on protocol errors; remember the code it sent, since its `close` event
   * reports what the peer answered (or 1006 when the peer never answered).
   */
  noteSocketError (err: Error & { code?: string }): void {
    const code = closeCodeOfWsError(err)
    if (code === undefined) return
    this.#sentClose ??= { code, reason: err.code ?? '' }
    this.served.metrics.protocolError(err.code ?? 'WS_ERR_UNKNOWN')
  }

  /** The close code and reason this server sent, if it was the side that closed. */
  get sentClose (): { code: number, reason: string } | undefined {
    return this.#sentClose
  }

  terminate (): void {
    this.#socket.terminate()
  }

  ping (): void {
    if (this.#socket.readyState === OPEN) this.#socket.ping()
  }

  /**
   * After ws parsed a read: fragments of an unfinished message that arrived in it are copied out
   * of the read's buffer (see fragment-guard.ts), and the message's start is noted for the
   * deadline by which it must complete.
   */
  afterRead (): void {
    const receiver = this.#receiver
    if (receiver === undefined) return
    if (receiver._fragmented === 0) {
      this.incompleteSince = undefined
      return
    }
    const fragments = receiver._fragments
    if (fragments !== this.#fragments) {
      // A new message: ws starts each one with a new array.
      this.#fragments = fragments
      this.#compactFragments = 0
      this.incompleteSince = Math.floor(performance.now())
    }
    if (fragments.length > this.#compactFragments) this.#compactFragments = compactFragments(fragments, this.#compactFragments)
  }

  /**
   * Answers a ping. ws's own answer (autoPong) terminates a peer that pings faster than it reads
   * the pongs without saying why; this one says so, in the log and the metrics.
   */
  answerPing (data: Buffer): void {
    if (this.#socket.readyState !== OPEN) return
    if (this.#pendingPongs >= DEFAULTS.maxPendingPongs) {
      this.log.warn({ pendingPongs: this.#pendingPongs }, 'ws.ping_flood')
      this.served.metrics.protocolError('PING_FLOOD')
      // Its pongs wait unread behind each other: a close frame would wait behind them too.
      this.#sentClose ??= { code: CloseCode.ABNORMAL_CLOSURE, reason: 'ping flood' }
      this.terminate()
      return
    }
    this.#pendingPongs++
    this.#socket.pong(data, false, () => { this.#pendingPongs-- })
  }

  #closeSlowConsumer (): void {
    if (this.#closing) return
    this.log.warn({ bufferedBytes: this.#socket.bufferedAmount }, 'ws.slow_consumer')
    this.served.metrics.slowConsumerClosed()
    this.close(CloseCode.SLOW_CONSUMER, 'slow consumer')
    // The close frame waits behind the full buffer; a peer that reads nothing never gets it.
    setTimeout(() => { if (this.#socket.readyState !== CLOSED) this.terminate() }, DEFAULTS.slowConsumerGraceMs).unref()
  }
}

/**
 * The close code ws sent after one of its receiver errors. ws keeps it on the error under a
 * symbol of its own (`kStatusCode`, not exported), so it is read from there rather than
 * guessed from the error's name: too many fragments is 1008, a bad frame 1002, bad UTF-8 1007.
 */
function closeCodeOfWsError (err: Error & { code?: string }): number | undefined {
  if (err.code === undefined || !err.code.startsWith('WS_ERR_')) return undefined
  for (const symbol of Object.getOwnPropertySymbols(err)) {
    const value = (err as unknown as Record<symbol, unknown>)[symbol]
    if (symbol.description === 'status-code' && typeof value === 'number' && closeCodeEntry(value) !== undefined) return value
  }
  return CloseCode.PROTOCOL_ERROR
}

function corkForRead (this: Socket): void {
  this.cork()
}

function afterRead (this: ConnectionStream): void {
  this.uncork()
  this[kConnection]?.afterRead()
}

export function truncateUtf8 (text: string, maxBytes: number): string {
  const bytes = Buffer.from(text)
  if (bytes.length <= maxBytes) return text
  let end = maxBytes
  // Step back over continuation bytes (10xxxxxx) so no character is cut in half.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return bytes.subarray(0, end).toString('utf8')
}
