import type { Span } from '@opentelemetry/api'
import { BrokerUnavailableError } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { DEFAULTS } from '../defaults.js'
import { ErrorCode } from '../protocol/codes.js'
import type { MessageId, RealtimeErrorOptions } from '../protocol/frames.js'
import type { OnceClaim } from '../broker/broker.js'
import { answerInProgress, onceKey, renewWhileRunning, replayAnswer, type StoredAnswer } from './once.js'
import { endSpanWithError } from '../telemetry/tracing.js'
import type { MessageContext } from '../types.js'
import type { CompiledMessage } from './compile.js'
import type { DispatchEnvironment } from './dispatch.js'
import type { Envelope } from './envelope.js'
import { ConnectionGoneError, RealtimeError } from './realtime-error.js'
import { refuse, UNKNOWN_TYPE_LABEL, withinBudget } from './refusal.js'

/** The outcome label of a message whose connection went away before it was answered. */
export const ABANDONED_OUTCOME = 'abandoned'

/**
 * One message on its way through the pipeline: budget → type → validation → authorization →
 * handler → reply, then its span, duration metric and debug line. It is also what the handler
 * receives as its context, so the pipeline's state travels in the one object a message already
 * costs; `log` and `publish` are made only when a handler asks for them.
 */
export class HandlerContext implements MessageContext {
  readonly id: MessageId | undefined
  readonly type: string
  readonly connection: Connection
  readonly #env: DispatchEnvironment
  readonly #data: unknown
  readonly #message: CompiledMessage | undefined
  /** The metric label: the declared type, or `unknown`. */
  readonly #label: string
  readonly #receivedAt: number
  readonly #span: Span
  readonly #idempotencyKey: string | undefined

  constructor (env: DispatchEnvironment, connection: Connection, envelope: Envelope, message: CompiledMessage | undefined, label: string, receivedAt: number, span: Span) {
    this.#env = env
    this.connection = connection
    this.id = envelope.id
    this.type = envelope.type
    this.#data = envelope.data
    this.#message = message
    this.#label = label
    this.#receivedAt = receivedAt
    this.#span = span
    this.#idempotencyKey = envelope.idempotencyKey
  }

  get log (): Connection['log'] {
    return this.connection.log
  }

  /** A bound function, as handlers destructure it; made only when a handler asks for it. */
  get publish (): MessageContext['publish'] {
    const { connection } = this
    const env = this.#env
    return async (topic, event, data) => await env.publish(connection.declared, topic, event, data)
  }

  /** Runs the pipeline; each refusal answers in place and ends it. */
  run (): void {
    const message = this.#message
    const { connection, id } = this
    if (!withinBudget(connection, id, this.#label, message?.messagesPerSecond, this.#span)) return
    if (message === undefined) {
      refuse(connection, id, UNKNOWN_TYPE_LABEL, ErrorCode.UNKNOWN_TYPE, 'this route declares no such message type', 'ws.protocol_error', undefined, this.#span)
      return
    }
    if (message.validator !== undefined && !message.validator.check(this.#data)) {
      const details = message.validator.explain(this.#data)
      refuse(connection, id, this.#label, ErrorCode.VALIDATION_FAILED, 'data failed validation', 'ws.validation_failed', { details }, this.#span)
      return
    }
    connection.handlerStarted()
    const authorize = connection.declared.authorizeMessage
    if (authorize !== undefined && !this.type.startsWith('$')) {
      this.#authorizeThenInvoke(authorize, message).catch((err: unknown) => connection.log.error({ err }, 'ws.internal_error'))
      return
    }
    this.#invoke(message)
  }

  async #authorizeThenInvoke (authorize: NonNullable<Connection['declared']['authorizeMessage']>, message: CompiledMessage): Promise<void> {
    let allowed: boolean
    try {
      allowed = await authorize(this.type, this.#dataFor(message), this.connection)
    } catch (err) {
      this.#settle(this.#answerError(err))
      return
    }
    if (!allowed) {
      this.#settle(this.#answerError(new RealtimeError(ErrorCode.FORBIDDEN, 'not allowed to send this message')))
      return
    }
    this.#invoke(message)
  }

  /**
   * A synchronous handler is answered in the same tick without a promise: most are, and with
   * an OpenTelemetry context manager every promise costs a hook.
   */
  #invoke (message: CompiledMessage): void {
    // Protocol commands are idempotent by nature; a declared type with a key runs once.
    if (this.#idempotencyKey !== undefined && !this.type.startsWith('$')) {
      this.#invokeOnce(message, this.#idempotencyKey).catch((err: unknown) => this.connection.log.error({ err }, 'ws.internal_error'))
      return
    }
    let result: unknown
    try {
      // Checked against the schema the handler was declared with, which its `never` stands for.
      result = message.handler(this.#dataFor(message) as never, this)
    } catch (err) {
      this.#settle(this.#answerError(err))
      return
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      Promise.resolve(result).then(
        (value) => this.#answer(message, value),
        (err: unknown) => this.#settle(this.#answerError(err))
      ).catch((err: unknown) => this.connection.log.error({ err }, 'ws.internal_error'))
      return
    }
    this.#answer(message, result)
  }

  /**
   * A keyed message: claimed first, on every node that shares the broker. A retry of a finished
   * run gets its answer again; one that comes while it runs gets `IN_PROGRESS`. The answer is
   * stored before it is sent, so a node that dies after it leaves it for the retry.
   */
  async #invokeOnce (message: CompiledMessage, idempotencyKey: string): Promise<void> {
    const settings = this.#env.once
    const { connection } = this
    const key = onceKey(connection, this.type, idempotencyKey)
    let claim: OnceClaim
    try {
      claim = await settings.broker.claimOnce(key, settings.leaseMs)
    } catch (err) {
      this.#settle(this.#answerError(err))
      return
    }
    if (claim.state === 'done') {
      connection.served.metrics.idempotentReplayed(this.type)
      this.#settle(replayAnswer(connection, this.id, claim.answer))
      return
    }
    if (claim.state === 'running') {
      connection.served.metrics.messageError(this.type, ErrorCode.IN_PROGRESS)
      this.#settle(answerInProgress(connection, this.id, settings))
      return
    }
    const { token } = claim
    const stopRenewing = renewWhileRunning(settings, key, token)
    let answer: { stored: StoredAnswer, send: () => string }
    try {
      const result = await (message.handler(this.#dataFor(message) as never, this) as unknown)
      const body = this.id === undefined ? undefined : message.serializeReply?.(result)
      answer = { stored: { r: body ?? null }, send: () => { if (this.id !== undefined) connection.sendReply(this.id, body); return 'ok' } }
    } catch (err) {
      const refusal = this.#refusalOf(err)
      // A refusal or failure of the handler's own is its answer; a run that failed for want of
      // the broker, or whose client left under it, gives its claim up so that a retry runs it.
      if (refusal !== undefined && refusal.code !== ErrorCode.UNAVAILABLE) {
        answer = { stored: { e: { code: refusal.code, message: refusal.message, ...refusal.options } }, send: () => this.#sendRefusal(refusal) }
      } else {
        stopRenewing()
        await settings.broker.releaseOnce(key, token).catch(() => {})
        this.#settle(refusal === undefined ? ABANDONED_OUTCOME : this.#sendRefusal(refusal))
        return
      }
    }
    stopRenewing()
    try {
      await settings.broker.finishOnce(key, token, JSON.stringify(answer.stored), settings.ttlMs)
    } catch (err) {
      // The claim lapses with its lease: a retry after it runs the message again.
      connection.log.warn({ err, type: this.type }, 'ws.idempotent_answer_not_stored')
    }
    this.#settle(answer.send())
  }

  #dataFor (message: CompiledMessage): unknown {
    return message.validator === undefined ? undefined : this.#data
  }

  /** Sends the `$reply` (when the message had an id); a reply its schema cannot serialize is a handler error. */
  #answer (message: CompiledMessage, result: unknown): void {
    let outcome = 'ok'
    try {
      if (this.id !== undefined) this.connection.sendReply(this.id, message.serializeReply?.(result))
    } catch (err) {
      outcome = this.#answerError(err)
    }
    this.#settle(outcome)
  }

  /** The end of every handled message: span, duration metric and debug line. */
  #settle (outcome: string): void {
    const { connection } = this
    connection.handlerFinished()
    if (outcome === 'ok' || outcome === ABANDONED_OUTCOME) this.#span.end()
    else endSpanWithError(this.#span, outcome)
    const seconds = (performance.now() - this.#receivedAt) / 1000
    connection.served.metrics.messageHandled(this.type, outcome, seconds)
    if (connection.logsEachMessage) {
      connection.log.debug({ type: this.type, outcome, durationMs: seconds * 1000 }, 'ws.message')
    }
  }

  /** The one place where what a handler threw becomes an `$error` frame; returns the outcome. */
  #answerError (err: unknown): string {
    const refusal = this.#refusalOf(err)
    return refusal === undefined ? ABANDONED_OUTCOME : this.#sendRefusal(refusal)
  }

  /** What the client is told of `err`, logged and counted; undefined when nobody is left to tell. */
  #refusalOf (err: unknown): Refusal | undefined {
    const { connection, type } = this
    const metrics = connection.served.metrics
    if (err instanceof ConnectionGoneError) {
      // The client left while its message was handled: nobody to answer, nothing went wrong.
      connection.log.debug({ type }, 'ws.message_abandoned')
      return undefined
    }
    if (err instanceof RealtimeError) {
      metrics.messageError(type, err.code)
      connection.log.info({ type, code: err.code }, 'ws.message_refused')
      return { code: err.code, message: err.message, options: { details: err.details, retryAfterMs: err.retryAfterMs } }
    }
    if (err instanceof BrokerUnavailableError) {
      metrics.messageError(type, ErrorCode.UNAVAILABLE)
      connection.log.warn({ type, err }, 'ws.broker_unavailable')
      return { code: ErrorCode.UNAVAILABLE, message: 'a service this message needs is unavailable', options: { retryAfterMs: DEFAULTS.unavailableRetryAfterMs } }
    }
    metrics.messageError(type, ErrorCode.HANDLER_ERROR)
    connection.log.error({ type, err }, 'ws.handler_error')
    return { code: ErrorCode.HANDLER_ERROR, message: 'the handler failed to process this message', options: {} }
  }

  #sendRefusal (refusal: Refusal): string {
    this.connection.sendError(this.id, refusal.code, refusal.message, refusal.options)
    return refusal.code
  }
}

interface Refusal {
  code: string
  message: string
  options: RealtimeErrorOptions
}
