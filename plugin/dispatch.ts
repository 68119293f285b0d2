import { BrokerUnavailableError, type TopicPosition } from './broker/broker.js'
import type { Connection } from './connection.js'
import { DEFAULTS } from './defaults.js'
import { parseEnvelope, type Envelope } from './envelope.js'
import { CloseCode, ErrorCode, RealtimeError, type MessageId, type RealtimeErrorOptions } from './protocol.js'
import type { CompiledMessage, CompiledRoute } from './route-table.js'
import type { RateLimitScope } from './telemetry/metrics.js'
import { endSpanWithError, startMessageSpan, withSpan } from './telemetry/tracing.js'
import type { MessageContext } from './types.js'
import type { Span } from '@opentelemetry/api'

/** What the pipeline needs beyond the connection: plugin-wide limits and publishing. */
export interface DispatchEnvironment {
  maxNestingDepth: number
  /** Protocol commands (`$subscribe`, `$unsubscribe`), looked up after the route's own types. */
  commands: Map<string, CompiledMessage>
  publish: (route: CompiledRoute, topic: string, event: string, data: unknown) => Promise<TopicPosition>
}

/** The `type` label of frames whose type is not declared: never a value the client chose. */
const UNKNOWN = 'unknown'

/**
 * The pipeline of one frame: envelope → type → budget → validation → authorization → handler →
 * reply. Every failure leaves as the `$error` of PROTOCOL.md; nothing thrown here escapes to
 * `ws`, where an exception in a `message` listener would take the process down.
 */
export function handleFrame (env: DispatchEnvironment, connection: Connection, raw: Buffer, isBinary: boolean): void {
  try {
    const receivedAt = performance.now()
    connection.lastMessageAt = Math.floor(receivedAt)
    const metrics = connection.compiledRoute.metrics
    if (isBinary) {
      metrics.frameReceived(UNKNOWN, raw.length)
      handleBinary(connection, raw)
      return
    }
    const parsed = parseEnvelope(raw.toString('utf8'), env.maxNestingDepth)
    if (!parsed.ok) {
      metrics.frameReceived(UNKNOWN, raw.length)
      const { id, code, message } = parsed.failure
      // Malformed frames spend budget too, or a flood of them would never be limited.
      if (withinBudget(connection, id, UNKNOWN, undefined)) refuse(connection, id, UNKNOWN, code, message, 'ws.protocol_error')
      return
    }
    const { envelope } = parsed
    const message = connection.compiledRoute.messages.get(envelope.type) ?? env.commands.get(envelope.type)
    const type = message === undefined ? UNKNOWN : envelope.type
    metrics.frameReceived(type, raw.length)
    // Started as soon as the type is known: budget, validation, handler and reply happen inside.
    const span = startMessageSpan({
      route: connection.route,
      type,
      connectionId: connection.id,
      messageId: envelope.id,
      size: raw.length,
      traceparent: envelope.traceparent,
      connectionSpan: connection.upgradeSpan
    })
    // With the span active, every line logged about this message carries its trace id.
    withSpan(span, handleMessage, env, connection, envelope, message, type, receivedAt, span)
  } catch (err) {
    connection.log.error({ err }, 'ws.internal_error')
    connection.close(CloseCode.INTERNAL_ERROR, 'internal error')
  }
}

/** The rest of the pipeline for a frame whose envelope parsed, inside its span. */
function handleMessage (
  env: DispatchEnvironment,
  connection: Connection,
  envelope: Envelope,
  message: CompiledMessage | undefined,
  type: string,
  receivedAt: number,
  span: Span
): void {
  const { id } = envelope
  if (!withinBudget(connection, id, type, message?.messagesPerSecond, span)) return
  if (message === undefined) {
    refuse(connection, id, UNKNOWN, ErrorCode.UNKNOWN_TYPE, 'this route declares no such message type', 'ws.protocol_error', undefined, span)
    return
  }
  if (message.validator !== undefined && !message.validator.check(envelope.data)) {
    const details = message.validator.explain(envelope.data)
    refuse(connection, id, type, ErrorCode.VALIDATION_FAILED, 'data failed validation', 'ws.validation_failed', { details }, span)
    return
  }
  runHandler(env, connection, message, envelope, receivedAt, span)
}

/** Answers a refused frame: error frame, metric and log line, in one place. */
function refuse (
  connection: Connection,
  id: MessageId | undefined,
  type: string,
  code: string,
  message: string,
  event: string,
  options?: RealtimeErrorOptions,
  span?: Span
): void {
  if (span !== undefined) endSpanWithError(span, code)
  connection.compiledRoute.metrics.messageError(type, code)
  connection.log.info({ type, code, details: options?.details }, event)
  connection.sendError(id, code, message, options)
}

/** The connection's budget (or its type's), then the one its client's connections share. */
function withinBudget (connection: Connection, id: MessageId | undefined, type: string, typeRate: number | undefined, span?: Span): boolean {
  let retryAfterMs = connection.takeToken(type, typeRate)
  let scope: RateLimitScope = 'message'
  if (retryAfterMs === 0) {
    retryAfterMs = connection.takeClientToken()
    if (retryAfterMs === 0) return true
    scope = 'client'
  }
  connection.compiledRoute.metrics.rateLimited(scope)
  if (connection.recordRefusal()) {
    if (span !== undefined) endSpanWithError(span, ErrorCode.RATE_LIMITED)
    connection.log.warn('ws.rate_limit_abuse')
    connection.close(CloseCode.POLICY_VIOLATION, 'message rate limit repeatedly exceeded')
    return false
  }
  refuse(connection, id, type, ErrorCode.RATE_LIMITED, 'message budget exceeded', 'ws.rate_limited', { retryAfterMs }, span)
  return false
}

/**
 * Authorization, handler, reply. A synchronous handler is answered in the same tick without a
 * promise: most are, and with an OpenTelemetry context manager every promise costs a hook.
 */
function runHandler (env: DispatchEnvironment, connection: Connection, message: CompiledMessage, envelope: Envelope, startedAt: number, span: Span): void {
  connection.handlerStarted()
  const authorize = connection.compiledRoute.authorizeMessage
  if (authorize !== undefined && !envelope.type.startsWith('$')) {
    authorizeThenInvoke(authorize, env, connection, message, envelope, startedAt, span).catch((err: unknown) => {
      connection.log.error({ err }, 'ws.internal_error')
    })
    return
  }
  invokeHandler(env, connection, message, envelope, startedAt, span)
}

async function authorizeThenInvoke (
  authorize: NonNullable<CompiledRoute['authorizeMessage']>,
  env: DispatchEnvironment,
  connection: Connection,
  message: CompiledMessage,
  envelope: Envelope,
  startedAt: number,
  span: Span
): Promise<void> {
  let allowed: boolean
  try {
    allowed = await authorize(envelope.type, message.validator === undefined ? undefined : envelope.data, connection)
  } catch (err) {
    settle(connection, envelope, startedAt, span, answerHandlerError(connection, envelope, err))
    return
  }
  if (!allowed) {
    const refusal = new RealtimeError(ErrorCode.FORBIDDEN, 'not allowed to send this message')
    settle(connection, envelope, startedAt, span, answerHandlerError(connection, envelope, refusal))
    return
  }
  invokeHandler(env, connection, message, envelope, startedAt, span)
}

function invokeHandler (env: DispatchEnvironment, connection: Connection, message: CompiledMessage, envelope: Envelope, startedAt: number, span: Span): void {
  const data = message.validator === undefined ? undefined : envelope.data
  let result: unknown
  try {
    result = message.handler(data, new HandlerContext(env, connection, envelope))
  } catch (err) {
    settle(connection, envelope, startedAt, span, answerHandlerError(connection, envelope, err))
    return
  }
  if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
    Promise.resolve(result).then(
      (value) => answer(connection, message, envelope, startedAt, span, value),
      (err: unknown) => settle(connection, envelope, startedAt, span, answerHandlerError(connection, envelope, err))
    ).catch((err: unknown) => connection.log.error({ err }, 'ws.internal_error'))
    return
  }
  answer(connection, message, envelope, startedAt, span, result)
}

/** Sends the `$reply` (when the message had an id); a reply its schema cannot serialize is a handler error. */
function answer (connection: Connection, message: CompiledMessage, envelope: Envelope, startedAt: number, span: Span, result: unknown): void {
  let outcome = 'ok'
  try {
    if (envelope.id !== undefined) connection.sendReply(envelope.id, message.serializeReply?.(result))
  } catch (err) {
    outcome = answerHandlerError(connection, envelope, err)
  }
  settle(connection, envelope, startedAt, span, outcome)
}

/** The end of every handled message: span, duration metric and debug line. */
function settle (connection: Connection, envelope: Envelope, startedAt: number, span: Span, outcome: string): void {
  connection.handlerFinished()
  if (outcome === 'ok') span.end()
  else endSpanWithError(span, outcome)
  const seconds = (performance.now() - startedAt) / 1000
  connection.compiledRoute.metrics.messageHandled(envelope.type, outcome, seconds)
  if (connection.logsEachMessage) {
    connection.log.debug({ type: envelope.type, outcome, durationMs: seconds * 1000 }, 'ws.message')
  }
}

/** The one place where what a handler threw becomes an `$error` frame; returns its code. */
function answerHandlerError (connection: Connection, envelope: Envelope, err: unknown): string {
  const { id, type } = envelope
  const metrics = connection.compiledRoute.metrics
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

function handleBinary (connection: Connection, raw: Buffer): void {
  const policy = connection.compiledRoute.binary
  if (policy === 'close') {
    connection.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not accepted')
    return
  }
  if (!withinBudget(connection, undefined, UNKNOWN, undefined)) return
  if (policy === 'error') {
    refuse(connection, undefined, UNKNOWN, ErrorCode.BINARY_NOT_SUPPORTED, 'this route accepts text frames only', 'ws.protocol_error')
    return
  }
  connection.handlerStarted()
  Promise.resolve()
    .then(() => policy(raw, connection))
    .catch((err: unknown) => {
      connection.compiledRoute.metrics.messageError(UNKNOWN, ErrorCode.HANDLER_ERROR)
      connection.log.error({ err }, 'ws.handler_error')
      connection.sendError(undefined, ErrorCode.HANDLER_ERROR, 'the handler failed to process this message')
    })
    .finally(() => connection.handlerFinished())
}

/** One per handled message: a class, so the object is cheap and `log` is made only if used. */
class HandlerContext implements MessageContext<any> {
  readonly id: MessageId | undefined
  readonly type: string
  readonly connection: Connection
  readonly #env: DispatchEnvironment

  constructor (env: DispatchEnvironment, connection: Connection, envelope: Envelope) {
    this.#env = env
    this.connection = connection
    this.id = envelope.id
    this.type = envelope.type
  }

  get log (): Connection['log'] {
    return this.connection.log
  }

  /** A bound function, as handlers destructure it; made only when a handler asks for it. */
  get publish (): MessageContext<any>['publish'] {
    const { connection } = this
    const env = this.#env
    return async (topic, event, data) => await env.publish(connection.compiledRoute, topic, event, data)
  }
}
