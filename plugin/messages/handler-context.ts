import type { Span } from '@opentelemetry/api'
import { BrokerUnavailableError } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { DEFAULTS } from '../defaults.js'
import { ErrorCode } from '../protocol/codes.js'
import type { MessageId } from '../protocol/frames.js'
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
    const { connection, id, type } = this
    const metrics = connection.served.metrics
    if (err instanceof ConnectionGoneError) {
      // The client left while its message was handled: nobody to answer, nothing went wrong.
      connection.log.debug({ type }, 'ws.message_abandoned')
      return ABANDONED_OUTCOME
    }
    if (err instanceof RealtimeError) {
      metrics.messageError(type, err.code)
      connection.log.info({ type, code: err.code }, 'ws.message_refused')
      connection.sendError(id, err.code, err.message, { details: err.details, retryAfterMs: err.retryAfterMs })
      return err.code
    }
    if (err instanceof BrokerUnavailableError) {
      metrics.messageError(type, ErrorCode.UNAVAILABLE)
      connection.log.warn({ type, err }, 'ws.broker_unavailable')
      connection.sendError(id, ErrorCode.UNAVAILABLE, 'a service this message needs is unavailable', {
        retryAfterMs: DEFAULTS.unavailableRetryAfterMs
      })
      return ErrorCode.UNAVAILABLE
    }
    metrics.messageError(type, ErrorCode.HANDLER_ERROR)
    connection.log.error({ type, err }, 'ws.handler_error')
    connection.sendError(id, ErrorCode.HANDLER_ERROR, 'the handler failed to process this message')
    return ErrorCode.HANDLER_ERROR
  }
}
