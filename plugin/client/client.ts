import { compareOffsets } from '../protocol/offsets.js'
import { CloseCode, ErrorCode } from '../protocol/codes.js'
import { PRESENCE_DIFF_TYPE, SUBPROTOCOL } from '../protocol/frames.js'
import { backoffDelay, type BackoffOptions } from '../protocol/backoff.js'
import { closePolicy, type ClosePolicy } from '../protocol/close-policy.js'
import { ClientErrorCode, RealtimeClientError } from './errors.js'
import { PresenceState, type PresenceDiffData, type PresenceReply, type PresenceUpdate } from './presence.js'
import type { AnyRoute, EventName, MessageReply, MessageType, OptionalDataArgs, PresenceInfo, RouteShape, TopicEvent } from './types.js'

/** `connecting` (first attempt) → `open` → `reconnecting` (after a drop) → `closed` (for good). */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/**
 * An event-handler property that the browser's and `ws`'s sockets each type with their own
 * event classes. Declared as a method, it is checked bivariantly, as the DOM's own handlers
 * are: both classes fit, while the client reads only the fields named here.
 */
type EventHandler<E> = { bivarianceHack (event: E): void }['bivarianceHack'] | null

/** What the client needs of a WebSocket: the browser's API, which `ws` implements too. */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  onopen: EventHandler<unknown>
  onmessage: EventHandler<{ readonly data: unknown }>
  onclose: EventHandler<{ readonly code: number, readonly reason: string }>
  onerror: EventHandler<unknown>
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

export interface ClientOptions {
  /** The WebSocket class; defaults to the global one (browsers, Node 22+). Pass `ws`'s in Node 20. */
  WebSocket?: WebSocketConstructor
  /** Called before every connection attempt; the token rides as the `bearer.<token>` subprotocol. */
  getToken?: () => string | undefined | Promise<string | undefined>
  backoff?: BackoffOptions
  /** How long `request` waits for its answer (default 10 s). */
  requestTimeoutMs?: number
  /** Messages held while not connected (default 100); beyond, new sends are refused. */
  queueLimit?: number
  /** Reconnect after an idle-timeout close (4000) too (default false). */
  reconnectOnIdle?: boolean
  /** Quiet time after which the client sends `$ping` (default: the `heartbeatMs` the server announces). */
  pingIntervalMs?: number
  /** Further quiet time after that before the connection counts as dead (default 10 s). */
  deadAfterMs?: number
  /**
   * With `getToken`, credentials that expire are refreshed in-band (`$refresh`) at this share of
   * their remaining life (default 0.8), less up to a tenth at random so that a fleet's clients do
   * not refresh at once; `0` never refreshes (the server then closes with 4003 and the client
   * reconnects with a new token).
   */
  refreshAt?: number
}

export interface RequestOptions {
  /** Overrides `requestTimeoutMs`. */
  timeoutMs?: number
  /**
   * Runs once on the server however often it is sent (`true`: under a key the client makes up;
   * a string: that key). The client then sends it again on the next connection when the
   * connection dropped before the answer, and again after `retryAfterMs` while the server says
   * `IN_PROGRESS`, until `timeoutMs`: the answer is the one run's.
   */
  idempotent?: boolean | string
}

/** `data` (left out when the type declares none), then options. */
type RequestArgs<R extends RouteShape, K extends MessageType<R>> =
  [...OptionalDataArgs<R, K>] extends [data?: undefined] ? [data?: undefined, options?: RequestOptions] : [data: OptionalDataArgs<R, K>[0], options?: RequestOptions]

/** What a subscription hears besides its events. */
export interface SubscribeOptions<Info = unknown> {
  /**
   * The topic's members, kept current: called with the whole membership once subscribed, then
   * after every change, and afresh after each reconnect (who left meanwhile is in `left`).
   */
  presence?: (update: PresenceUpdate<Info>) => void
  /** After a reconnect, the server could not replay everything since the last offset: refetch state. */
  onRecoveryFailed?: (topic: string) => void
  /** After a reconnect, the server refused the subscription for good (e.g. `FORBIDDEN`): it has ended. */
  onError?: (topic: string, error: RealtimeClientError) => void
}

interface Pending {
  resolve: (value: any) => void
  reject: (err: RealtimeClientError) => void
  timer: ReturnType<typeof setTimeout>
  /** Still waiting in the queue: a dropped connection never saw it, so it does not fail. */
  queued: boolean
  /** An idempotent request's frame: sent again after a drop or an `IN_PROGRESS`. */
  retryFrame: string | undefined
  /** Who sent it (`$welcome`'s `user`): its key is that identity's, so only its connections resend it. */
  user: string | undefined
  /** Sent, then its connection dropped before the answer: waiting to go again. */
  dropped: boolean
}

interface Queued {
  frame: string
  /** The request waiting for this frame's answer, if any. */
  id: number | undefined
}

interface TopicState<R extends RouteShape> {
  handlers: Set<(event: TopicEvent<R>) => void>
  options: SubscribeOptions<PresenceInfo<R>>
  presence: PresenceState<PresenceInfo<R>> | undefined
  last: string | undefined
  epoch: string | undefined
  /** Settled by the first `$subscribe` answer. */
  ready: { resolve: () => void, reject: (err: RealtimeClientError) => void } | undefined
  /**
   * While a resumption is answered: events, held to be delivered in offset order. A server-side
   * subscription delivers live events before its replay has come, so order is restored here.
   */
  resuming: Frame[] | undefined
}

interface Frame {
  type: string
  id?: string | number
  data?: any
  topic?: string
  offset?: string
  error?: { code: string, message: string, details?: unknown, retryAfterMs?: number }
}

interface Welcome {
  connectionId: string
  user?: string
  heartbeatMs: number
  limits?: { messagesPerSecond?: number }
  expiresAt?: number
  subscriptions?: Array<{ topic: string, offset: string, epoch: string }>
}

type StateListener = (state: ClientState, detail: { code?: number, delayMs?: number, attempt: number }) => void

const OPEN = 1
/** Its answer only has to arrive: any frame proves the connection alive. */
const PING = JSON.stringify({ type: '$ping', id: '$ping' })
/** A key no other request of this client will have: 128 random bits, hex. */
function randomKey (): string {
  const bytes = new Uint8Array(16)
  globalThis.crypto.getRandomValues(bytes)
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')
}

/** `refreshAt` by default: refresh at 80% of the credentials' remaining life. */
const DEFAULT_REFRESH_AT = 0.8
/** Up to this share of the delay is taken off at random, so clients do not refresh together. */
const REFRESH_JITTER = 0.1
/** A 1013 ("try again later") starts its backoff this many attempts further up. */
const LATER_ATTEMPTS = 3

/**
 * A client for one route, typed by the server's route: `new RealtimeClient<ChatRoute>(url)`.
 * It reconnects by itself by close code with full-jitter backoff, resumes every subscription
 * from the last offset it saw (dropping duplicates), detects dead connections with `$ping`
 * where it cannot see protocol pings, and queues sends while reconnecting.
 */
export class RealtimeClient<R extends RouteShape = AnyRoute> {
  readonly url: string
  #state: ClientState = 'connecting'
  #socket: WebSocketLike | undefined
  #attempt = 0
  #nextId = 1
  #timer: ReturnType<typeof setTimeout> | undefined
  #heartbeat: ReturnType<typeof setInterval> | undefined
  #lastFrameAt = 0
  #pinging = false
  #connectionId: string | undefined
  /** The identity the server established for this connection, when there is one. */
  #user: string | undefined
  readonly #options: ClientOptions
  readonly #WebSocket: WebSocketConstructor
  readonly #pending = new Map<string | number, Pending>()
  readonly #queue: Queued[] = []
  /** The route's message budget from `$welcome`: resubscriptions and the queue are paced to it. */
  #messagesPerSecond = 0
  #pingSentAt: number | undefined
  #refreshTimer: ReturnType<typeof setTimeout> | undefined
  readonly #topics = new Map<string, TopicState<R>>()
  readonly #stateListeners = new Set<StateListener>()
  readonly #eventListeners = new Map<string, Set<(data: any) => void>>()
  /** Handlers of the topics the server subscribed this client to. */
  readonly #serverHandlers = new Set<(event: TopicEvent<R>) => void>()

  constructor (url: string, options: ClientOptions = {}) {
    this.url = url
    this.#options = options
    const Constructor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (Constructor === undefined) throw new RealtimeClientError(ClientErrorCode.NO_WEBSOCKET, 'no global WebSocket: pass the `WebSocket` option (e.g. from the `ws` package)')
    this.#WebSocket = Constructor
    this.#connect()
  }

  get state (): ClientState {
    return this.#state
  }

  /** The server's id for the current connection, from `$welcome`. */
  get connectionId (): string | undefined {
    return this.#connectionId
  }

  /** Calls `listener` on every state change; returns a function that stops it. */
  onState (listener: StateListener): () => void {
    this.#stateListeners.add(listener)
    return () => this.#stateListeners.delete(listener)
  }

  /** Calls `listener` for an event the server sends to this connection alone (not on a topic). */
  onEvent<K extends EventName<R>>(event: K, listener: (data: Extract<TopicEvent<R>, { event: K }>['data']) => void): () => void {
    let listeners = this.#eventListeners.get(event)
    if (listeners === undefined) {
      listeners = new Set()
      this.#eventListeners.set(event, listeners)
    }
    listeners.add(listener)
    return () => listeners.delete(listener)
  }

  /** Sends a message and waits for its `$reply` (resolved) or `$error` (rejected). */
  async request<K extends MessageType<R>>(type: K, ...args: RequestArgs<R, K>): Promise<MessageReply<R, K>> {
    const [data, options] = args as unknown as [unknown, RequestOptions | undefined]
    const idempotent = options?.idempotent
    const idempotencyKey = idempotent === true ? randomKey() : idempotent === false ? undefined : idempotent
    return await this.#request(type, data, options?.timeoutMs, idempotencyKey)
  }

  /** Sends a message without waiting for an answer; false when it could not even be queued. */
  send<K extends MessageType<R>>(type: K, ...args: OptionalDataArgs<R, K>): boolean {
    return this.#transmit(JSON.stringify({ type, data: args[0] }), undefined) !== 'refused'
  }

  /**
   * Subscribes to a topic: resolves once the server accepted it. After every reconnect the
   * client subscribes again from the last offset it saw; events at or below it are dropped.
   */
  async subscribe (topic: string, handler: (event: TopicEvent<R>) => void, options: SubscribeOptions<PresenceInfo<R>> = {}): Promise<() => void> {
    let state = this.#topics.get(topic)
    const unsubscribe = (): void => {
      const current = this.#topics.get(topic)
      if (current === undefined) return
      current.handlers.delete(handler)
      if (current.handlers.size > 0) return
      this.#topics.delete(topic)
      if (this.#state === 'open') this.#transmit(JSON.stringify({ type: '$unsubscribe', data: { topic } }), undefined)
    }
    if (state !== undefined) {
      // One subscription per topic: its options are the first call's.
      if (options.presence !== undefined && options.presence !== state.options.presence) {
        throw new TypeError(`already subscribed to ${topic}: presence is given by the first subscribe() of a topic`)
      }
      state.handlers.add(handler)
      return unsubscribe
    }
    state = { handlers: new Set([handler]), options, presence: options.presence === undefined ? undefined : new PresenceState(topic), last: undefined, epoch: undefined, ready: undefined, resuming: undefined }
    this.#topics.set(topic, state)
    const created = state
    await new Promise<void>((resolve, reject) => {
      created.ready = { resolve, reject }
      if (this.#state === 'open') this.#subscribeOn(topic, created)
    })
    return unsubscribe
  }

  /**
   * Hears the events of the topics the server subscribed this connection to (the route's
   * `subscriptions`, named in `$welcome`), resumed after reconnects like the client's own.
   */
  onServerEvent (handler: (event: TopicEvent<R>) => void): () => void {
    this.#serverHandlers.add(handler)
    return () => { this.#serverHandlers.delete(handler) }
  }

  /** Reads a topic's presence once: the counts, and up to `limit` members unless `count` is set. */
  async presence (topic: string, options: { count?: boolean, limit?: number } = {}): Promise<PresenceReply<PresenceInfo<R>>> {
    return await this.#request('$presence', { topic, ...options })
  }

  /** Closes for good: no reconnection; pending requests fail with `CLOSED`. */
  close (code = 1000, reason = 'client closed'): void {
    this.#setState('closed', { code })
    clearTimeout(this.#timer)
    clearTimeout(this.#refreshTimer)
    this.#stopHeartbeat()
    const socket = this.#socket
    this.#socket = undefined
    this.#detach(socket)
    socket?.close(code, reason)
    this.#failPending(ClientErrorCode.CLOSED, 'the client was closed')
    for (const [, topic] of this.#topics) topic.ready?.reject(new RealtimeClientError(ClientErrorCode.CLOSED, 'the client was closed'))
    this.#queue.length = 0
  }

  async #request (type: string, data: unknown, timeoutMs = this.#options.requestTimeoutMs ?? 10_000, idempotencyKey?: string): Promise<any> {
    const id = this.#nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        // A request that times out in the queue must not go out later.
        const index = this.#queue.findIndex((entry) => entry.id === id)
        if (index >= 0) this.#queue.splice(index, 1)
        reject(new RealtimeClientError(ClientErrorCode.TIMEOUT, `no answer to ${type} within ${timeoutMs} ms`))
      }, timeoutMs)
      const frame = JSON.stringify(idempotencyKey === undefined ? { type, id, data } : { type, id, data, idempotencyKey })
      const pending: Pending = { resolve, reject, timer, queued: false, retryFrame: idempotencyKey === undefined ? undefined : frame, user: this.#user, dropped: false }
      this.#pending.set(id, pending)
      const outcome = this.#transmit(frame, id)
      if (outcome === 'refused') {
        clearTimeout(timer)
        this.#pending.delete(id)
        reject(new RealtimeClientError(this.#state === 'closed' ? ClientErrorCode.CLOSED : ClientErrorCode.QUEUE_FULL, 'the message could not be sent or queued'))
      }
      pending.queued = outcome === 'queued'
    })
  }

  /** Sends now, or queues while reconnecting; the queue refuses what exceeds its limit. */
  #transmit (frame: string, id: number | undefined): 'sent' | 'queued' | 'refused' {
    if (this.#state === 'closed') return 'refused'
    if (this.#state === 'open' && this.#socket?.readyState === OPEN) {
      this.#socket.send(frame)
      return 'sent'
    }
    if (this.#queue.length >= (this.#options.queueLimit ?? 100)) return 'refused'
    this.#queue.push({ frame, id })
    return 'queued'
  }

  #connect (): void {
    this.#attemptConnection().catch(() => this.#scheduleReconnect('reconnect', CloseCode.ABNORMAL_CLOSURE))
  }

  async #attemptConnection (): Promise<void> {
    const token = await this.#options.getToken?.()
    if (this.#state === 'closed') return
    const protocols = token === undefined ? [SUBPROTOCOL] : [SUBPROTOCOL, `bearer.${token}`]
    const socket = new this.#WebSocket(this.url, protocols)
    this.#socket = socket
    socket.onmessage = (message) => this.#onFrame(socket, message.data)
    socket.onclose = (event) => this.#onClose(socket, event.code)
    // A failed handshake reports an error and then a close (1006): the close decides.
    socket.onerror = () => {}
  }

  #onFrame (socket: WebSocketLike, raw: unknown): void {
    if (socket !== this.#socket) return
    this.#lastFrameAt = Date.now()
    this.#pinging = false
    let frame: Frame
    try {
      frame = JSON.parse(typeof raw === 'string' ? raw : String(raw)) as Frame
    } catch {
      return
    }
    if (frame.type === '$welcome') {
      this.#opened(frame.data)
      return
    }
    if (frame.type === '$reply' || frame.type === '$error') {
      this.#answered(frame)
      return
    }
    if (frame.topic !== undefined && frame.offset !== undefined) {
      this.#topicEvent(frame)
      return
    }
    if (frame.type === PRESENCE_DIFF_TYPE) {
      this.#presenceDiff(frame)
      return
    }
    for (const listener of this.#eventListeners.get(frame.type) ?? []) listener(frame.data)
  }

  #opened (welcome: Welcome): void {
    this.#attempt = 0
    this.#connectionId = welcome.connectionId
    this.#user = welcome.user
    this.#messagesPerSecond = welcome.limits?.messagesPerSecond ?? 0
    this.#setState('open', {})
    this.#startHeartbeat(this.#options.pingIntervalMs ?? welcome.heartbeatMs)
    this.#scheduleRefresh(welcome.expiresAt)
    // Resubscriptions first, then what was queued, paced to the route's budget: a burst after
    // a reconnect must not spend it and be refused (or closed with 1008 for abuse).
    const topics = [...this.#topics]
    this.#serverSubscribed(welcome.subscriptions ?? [])
    const queued = this.#queue.splice(0).filter((entry) => this.#stillRunsOnce(entry))
    const socket = this.#socket
    const steps: Array<() => void> = [
      ...topics.map(([topic, state]) => () => this.#subscribeOn(topic, state)),
      ...queued.map((entry) => () => this.#flush(socket, entry))
    ]
    this.#paced(socket, steps)
  }

  /** Runs `steps`: at once up to half the budget, then one every 1/budget seconds. */
  #paced (socket: WebSocketLike | undefined, steps: Array<() => void>): void {
    const budget = this.#messagesPerSecond
    const burst = budget > 0 ? Math.max(1, Math.floor(budget / 2)) : steps.length
    steps.slice(0, burst).forEach((step) => step())
    let next = burst
    const tick = (): void => {
      if (socket !== this.#socket || this.#state !== 'open' || next >= steps.length) return
      steps[next++]?.()
      setTimeout(tick, 1_000 / budget)
    }
    if (next < steps.length) setTimeout(tick, 1_000 / budget)
  }

  #flush (socket: WebSocketLike | undefined, entry: Queued): void {
    if (socket !== this.#socket || socket?.readyState !== OPEN) {
      this.#queue.push(entry)
      return
    }
    if (entry.id !== undefined) {
      const pending = this.#pending.get(entry.id)
      // Timed out while queued: its caller was told, so it stays unsent.
      if (pending === undefined) return
      pending.queued = false
    }
    socket.send(entry.frame)
  }

  #subscribeOn (topic: string, state: TopicState<R>): void {
    const data: { topic: string, since?: string, epoch?: string, presence?: boolean } = { topic }
    const resuming = state.last !== undefined
    if (resuming) {
      data.since = state.last
      data.epoch = state.epoch
      state.resuming ??= []
    }
    if (state.presence !== undefined) {
      data.presence = true
      state.presence.resubscribed()
    }
    this.#request('$subscribe', data).then((reply: { offset: string, epoch: string, recovered: boolean, presence?: PresenceReply<PresenceInfo<R>> }) => {
      if (this.#topics.get(topic) !== state) return
      // Another epoch: the old offsets mean nothing, the topic starts over from its present.
      if (state.epoch !== undefined && reply.epoch !== state.epoch) state.last = undefined
      state.epoch = reply.epoch
      // The replay (and live events) came before the answer; they go out before it moves `last`.
      this.#resumed(state)
      // Events (a replay, or live ones) may precede the answer: keep the newest offset seen.
      if (state.last === undefined || compareOffsets(reply.offset, state.last) > 0) state.last = reply.offset
      if (resuming && !reply.recovered) state.options.onRecoveryFailed?.(topic)
      state.ready?.resolve()
      state.ready = undefined
      if (state.presence !== undefined && reply.presence !== undefined) state.options.presence?.(state.presence.snapshot(reply.presence))
    }, (err: RealtimeClientError) => {
      if (this.#topics.get(topic) !== state) return
      this.#resumed(state)
      // A lost connection is retried on the next `$welcome`.
      if (err.code === ClientErrorCode.DISCONNECTED || err.code === ClientErrorCode.QUEUE_FULL || err.code === ClientErrorCode.CLOSED) return
      // Temporary (broker unreachable, budget spent, no answer): ask again later.
      if (err.code === ErrorCode.UNAVAILABLE || err.code === ErrorCode.RATE_LIMITED || err.code === ClientErrorCode.TIMEOUT) {
        const socket = this.#socket
        setTimeout(() => {
          if (socket === this.#socket && this.#state === 'open' && this.#topics.get(topic) === state) this.#subscribeOn(topic, state)
        }, err.retryAfterMs ?? backoffDelay(1, this.#options.backoff) + 100)
        return
      }
      // Refused for good (FORBIDDEN, VALIDATION_FAILED): the subscription ends, and says so.
      this.#topics.delete(topic)
      if (state.ready !== undefined) state.ready.reject(err)
      else state.options.onError?.(topic, err)
      state.ready = undefined
    })
  }

  #presenceDiff (frame: Frame): void {
    const state = this.#topics.get(frame.topic as string)
    const update = state?.presence?.diff(frame.data as PresenceDiffData<PresenceInfo<R>>)
    if (update !== undefined) state?.options.presence?.(update)
  }

  #topicEvent (frame: Frame): void {
    const state = this.#topics.get(frame.topic as string)
    if (state === undefined) return
    if (state.resuming !== undefined) {
      state.resuming.push(frame)
      return
    }
    this.#deliver(state, frame)
  }

  /** Ends a resumption: what it held goes out in offset order, none twice. */
  #resumed (state: TopicState<R>): void {
    const held = state.resuming ?? []
    state.resuming = undefined
    held.sort((a, b) => compareOffsets(a.offset as string, b.offset as string))
    for (const frame of held) this.#deliver(state, frame)
  }

  #deliver (state: TopicState<R>, frame: Frame): void {
    const offset = frame.offset as string
    if (state.last !== undefined && compareOffsets(offset, state.last) <= 0) return
    state.last = offset
    const event = { event: frame.type, data: frame.data, topic: frame.topic, offset } as TopicEvent<R>
    for (const handler of state.handlers) handler(event)
  }

  #answered (frame: Frame): void {
    if (frame.id === undefined) return
    const pending = this.#pending.get(frame.id)
    if (pending === undefined) return
    if (frame.type === '$error' && frame.error?.code === ErrorCode.IN_PROGRESS && pending.retryFrame !== undefined) {
      // The first run still runs (maybe on a node that died): ask again, until the timeout.
      const retryFrame = pending.retryFrame
      const id = frame.id as number
      setTimeout(() => {
        if (this.#pending.get(id) !== pending) return
        const outcome = this.#transmit(retryFrame, id)
        pending.queued = outcome === 'queued'
      }, frame.error.retryAfterMs ?? 1_000)
      return
    }
    this.#pending.delete(frame.id)
    clearTimeout(pending.timer)
    if (frame.type === '$reply') pending.resolve(frame.data)
    else pending.reject(new RealtimeClientError(frame.error?.code ?? ClientErrorCode.UNKNOWN, frame.error?.message ?? 'error', frame.error?.details, frame.error?.retryAfterMs))
  }

  #onClose (socket: WebSocketLike, code: number): void {
    if (socket !== this.#socket) return
    this.#scheduleReconnect(closePolicy(code, { reconnectOnIdle: this.#options.reconnectOnIdle }), code)
  }

  #scheduleReconnect (policy: ClosePolicy, code: number): void {
    if (this.#state === 'closed') return
    this.#stopHeartbeat()
    clearTimeout(this.#refreshTimer)
    this.#detach(this.#socket)
    this.#socket = undefined
    this.#failPending(ClientErrorCode.DISCONNECTED, 'the connection closed before the answer came', true)
    if (policy === 'stop') {
      this.close(code, 'not reconnecting')
      return
    }
    const attempt = this.#attempt++ + (policy === 'reconnect-later' ? LATER_ATTEMPTS : 0)
    const delayMs = policy === 'refresh-credentials' ? 0 : backoffDelay(attempt, this.#options.backoff)
    this.#setState('reconnecting', { code, delayMs })
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => this.#connect(), delayMs)
  }

  /**
   * Browsers never see the server's protocol pings: after `heartbeatMs` without a frame the
   * client sends `$ping`, and with nothing back within `deadAfterMs` it drops the connection
   * and reconnects, rather than waiting minutes for the OS to notice.
   */
  #startHeartbeat (heartbeatMs: number): void {
    this.#stopHeartbeat()
    if (!(heartbeatMs > 0)) return
    this.#lastFrameAt = Date.now()
    const graceMs = this.#options.deadAfterMs ?? 10_000
    this.#heartbeat = setInterval(() => {
      const now = Date.now()
      // Dead only once a ping went unanswered for the grace period: a timer that woke late
      // (a throttled background tab, a laptop resuming) first sends a ping.
      if (this.#pinging && now - (this.#pingSentAt ?? now) >= graceMs) {
        const socket = this.#socket
        this.#scheduleReconnect('reconnect', CloseCode.ABNORMAL_CLOSURE)
        socket?.close(4002, 'heartbeat timeout')
      } else if (!this.#pinging && now - this.#lastFrameAt >= heartbeatMs) {
        this.#pinging = true
        this.#pingSentAt = now
        this.#socket?.send(PING)
      }
    }, Math.max(50, Math.floor(heartbeatMs / 4)))
  }

  /**
   * An idempotent request dropped with its connection goes again only where its key means the
   * same run: a connection of the same identity. Anonymous keys are their connection's, so a
   * resend would run it again: it fails with `DISCONNECTED` like any request.
   */
  #stillRunsOnce (entry: Queued): boolean {
    const pending = entry.id === undefined ? undefined : this.#pending.get(entry.id)
    if (pending === undefined || !pending.dropped) return true
    pending.dropped = false
    if (pending.user !== undefined && pending.user === this.#user) return true
    clearTimeout(pending.timer)
    this.#pending.delete(entry.id as number)
    pending.reject(new RealtimeClientError(ClientErrorCode.DISCONNECTED, 'the connection closed before the answer came'))
    return false
  }

  /**
   * Topics the server subscribed this connection to: new ones start where the welcome says they
   * stand; known ones are resumed from their last offset like the client's own.
   */
  #serverSubscribed (subscriptions: Array<{ topic: string, offset: string, epoch: string }>): void {
    for (const { topic, offset, epoch } of subscriptions) {
      if (this.#topics.has(topic)) continue
      this.#topics.set(topic, { handlers: this.#serverHandlers, options: {}, presence: undefined, last: offset, epoch, ready: undefined, resuming: undefined })
    }
  }

  /** Refreshes ahead of `expiresAt`, then again ahead of each new expiry; a refusal leaves the 4003 to come. */
  #scheduleRefresh (expiresAt: number | undefined): void {
    clearTimeout(this.#refreshTimer)
    const share = this.#options.refreshAt ?? DEFAULT_REFRESH_AT
    const getToken = this.#options.getToken
    if (expiresAt === undefined || getToken === undefined || !(share > 0)) return
    const socket = this.#socket
    const delayMs = Math.max(0, (expiresAt - Date.now()) * share * (1 - Math.random() * REFRESH_JITTER))
    this.#refreshTimer = setTimeout(() => {
      Promise.resolve(getToken()).then(async (token) => {
        if (token === undefined || socket !== this.#socket || this.#state !== 'open') return
        const reply = await this.#request('$refresh', { token }) as { expiresAt?: number }
        if (socket === this.#socket) this.#scheduleRefresh(reply.expiresAt)
      }).catch(() => {})
    }, delayMs)
  }

  #stopHeartbeat (): void {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    this.#pinging = false
  }

  #detach (socket: WebSocketLike | undefined): void {
    if (socket === undefined) return
    socket.onmessage = null
    socket.onclose = null
  }

  #failPending (code: string, message: string, sentOnly = false): void {
    for (const [id, pending] of this.#pending) {
      if (sentOnly && pending.queued) continue
      // Dropped before its answer: an idempotent request goes again on the next connection.
      if (sentOnly && pending.retryFrame !== undefined && this.#queue.length < (this.#options.queueLimit ?? 100)) {
        pending.queued = true
        pending.dropped = true
        this.#queue.push({ frame: pending.retryFrame, id: id as number })
        continue
      }
      clearTimeout(pending.timer)
      this.#pending.delete(id)
      pending.reject(new RealtimeClientError(code, message))
    }
  }

  #setState (state: ClientState, detail: { code?: number, delayMs?: number }): void {
    const changed = this.#state !== state
    this.#state = state
    if (changed || state === 'reconnecting') {
      for (const listener of this.#stateListeners) listener(state, { ...detail, attempt: this.#attempt })
    }
  }
}
