import { BrokerUnavailableError, type TopicPosition } from './broker/broker.js'
import type { Connection } from './connection.js'
import { DEFAULTS } from './defaults.js'
import { parseEnvelope, type Envelope } from './envelope.js'
import { CloseCode, ErrorCode, RealtimeError, type MessageId } from './protocol.js'
import type { CompiledMessage, CompiledRoute } from './route-table.js'
import type { MessageContext } from './types.js'

/** What the pipeline needs beyond the connection: plugin-wide limits and publishing. */
export interface DispatchEnvironment {
  maxNestingDepth: number
  /** Protocol commands (`$subscribe`, `$unsubscribe`), looked up after the route's own types. */
  commands: Map<string, CompiledMessage>
  publish: (route: CompiledRoute, topic: string, event: string, data: unknown) => Promise<TopicPosition>
}

/**
 * The pipeline of one frame: envelope → type → budget → validation → handler → reply. Every
 * failure leaves as the `$error` of PROTOCOL.md; nothing thrown here escapes to `ws`, where an
 * exception in a `message` listener would take the process down.
 */
export function handleFrame (env: DispatchEnvironment, connection: Connection, raw: Buffer, isBinary: boolean): void {
  try {
    if (isBinary) {
      handleBinary(connection, raw)
      return
    }
    const parsed = parseEnvelope(raw.toString('utf8'), env.maxNestingDepth)
    const id = parsed.ok ? parsed.envelope.id : parsed.failure.id
    // Malformed frames spend budget too, or a flood of them would never be limited.
    if (!withinBudget(connection, id)) return
    if (!parsed.ok) {
      connection.log.info({ code: parsed.failure.code }, 'ws.protocol_error')
      connection.sendError(id, parsed.failure.code, parsed.failure.message)
      return
    }
    const { envelope } = parsed
    const message = connection.compiledRoute.messages.get(envelope.type) ?? env.commands.get(envelope.type)
    if (message === undefined) {
      connection.log.info({ code: ErrorCode.UNKNOWN_TYPE }, 'ws.protocol_error')
      connection.sendError(id, ErrorCode.UNKNOWN_TYPE, 'this route declares no such message type')
      return
    }
    if (message.validator !== undefined && !message.validator.check(envelope.data)) {
      const details = message.validator.explain(envelope.data)
      connection.log.info({ type: envelope.type, details }, 'ws.validation_failed')
      connection.sendError(id, ErrorCode.VALIDATION_FAILED, 'data failed validation', { details })
      return
    }
    runHandler(env, connection, message, envelope).catch((err: unknown) => {
      connection.log.error({ err }, 'ws.internal_error')
    })
  } catch (err) {
    connection.log.error({ err }, 'ws.internal_error')
    connection.close(CloseCode.INTERNAL_ERROR, 'internal error')
  }
}

function withinBudget (connection: Connection, id: MessageId | undefined): boolean {
  const retryAfterMs = connection.takeToken()
  if (retryAfterMs === 0) return true
  if (connection.recordRefusal()) {
    connection.log.warn('ws.rate_limit_abuse')
    connection.close(CloseCode.POLICY_VIOLATION, 'message rate limit repeatedly exceeded')
    return false
  }
  connection.log.info({ retryAfterMs }, 'ws.rate_limited')
  connection.sendError(id, ErrorCode.RATE_LIMITED, 'message budget exceeded', { retryAfterMs })
  return false
}

async function runHandler (env: DispatchEnvironment, connection: Connection, message: CompiledMessage, envelope: Envelope): Promise<void> {
  const data = message.validator === undefined ? undefined : envelope.data
  const context = createContext(env, connection, envelope)
  const startedAt = connection.logsEachMessage ? performance.now() : 0
  let outcome = 'ok'
  connection.inflight++
  try {
    const result = await message.handler(data, context)
    if (envelope.id !== undefined) {
      connection.sendReply(envelope.id, message.serializeReply?.(result))
    }
    message.afterReply?.(data, context)
  } catch (err) {
    outcome = answerHandlerError(connection, envelope, err)
  } finally {
    connection.inflight--
  }
  if (connection.logsEachMessage) {
    connection.log.debug({ type: envelope.type, outcome, durationMs: performance.now() - startedAt }, 'ws.message')
  }
}

/** The one place where what a handler threw becomes an `$error` frame; returns its code. */
function answerHandlerError (connection: Connection, envelope: Envelope, err: unknown): string {
  const { id, type } = envelope
  if (err instanceof RealtimeError) {
    connection.log.info({ type, code: err.code }, 'ws.message_refused')
    connection.sendError(id, err.code, err.message, { details: err.details, retryAfterMs: err.retryAfterMs })
    return err.code
  }
  if (err instanceof BrokerUnavailableError) {
    connection.log.warn({ type, err }, 'ws.broker_unavailable')
    connection.sendError(id, ErrorCode.UNAVAILABLE, 'a service this message needs is unavailable', {
      retryAfterMs: DEFAULTS.unavailableRetryAfterMs
    })
    return ErrorCode.UNAVAILABLE
  }
  connection.log.error({ type, err }, 'ws.handler_error')
  connection.sendError(id, ErrorCode.HANDLER_ERROR, 'the handler failed to process this message')
  return ErrorCode.HANDLER_ERROR
}

function handleBinary (connection: Connection, raw: Buffer): void {
  const policy = connection.compiledRoute.binary
  if (policy === 'close') {
    connection.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not accepted')
  } else if (policy === 'error') {
    if (!withinBudget(connection, undefined)) return
    connection.log.info({ code: ErrorCode.BINARY_NOT_SUPPORTED }, 'ws.protocol_error')
    connection.sendError(undefined, ErrorCode.BINARY_NOT_SUPPORTED, 'this route accepts text frames only')
  } else {
    if (!withinBudget(connection, undefined)) return
    connection.inflight++
    Promise.resolve()
      .then(() => policy(raw, connection))
      .catch((err: unknown) => {
        connection.log.error({ err }, 'ws.handler_error')
        connection.sendError(undefined, ErrorCode.HANDLER_ERROR, 'the handler failed to process this message')
      })
      .finally(() => { connection.inflight-- })
  }
}

function createContext (env: DispatchEnvironment, connection: Connection, envelope: Envelope): MessageContext<any> {
  return {
    id: envelope.id,
    type: envelope.type,
    connection,
    log: connection.log,
    publish: (topic, event, data) => env.publish(connection.compiledRoute, topic, event, data)
  }
}
