import type { Connection } from '../connection/connection.js'
import { CloseCode, ErrorCode } from '../protocol/codes.js'
import type { Publish } from '../topics/publish.js'
import { startMessageSpan, withSpan } from '../telemetry/tracing.js'
import type { CompiledMessage } from './compile.js'
import { parseEnvelope } from './envelope.js'
import type { OnceSettings } from './once.js'
import { HandlerContext } from './handler-context.js'
import { refuse, UNKNOWN_TYPE_LABEL, withinBudget } from './refusal.js'

/** What the pipeline needs beyond the connection: plugin-wide limits and publishing. */
export interface DispatchEnvironment {
  maxNestingDepth: number
  /** `traceSampleRatio`: the share of messages without a `traceparent` that start a span. */
  traceSampleRatio: number
  /** Protocol commands (`$subscribe`, `$unsubscribe`, `$ping`), looked up after the route's own types. */
  commands: Map<string, CompiledMessage>
  publish: Publish
  /** Where messages with an idempotency key are claimed and answered once. */
  once: OnceSettings
}

/**
 * The entry of one frame: binary frames by the route's policy, text frames through the envelope
 * to their type, then the message's own pipeline (`HandlerContext`) inside its span. Every
 * failure leaves as the `$error` of PROTOCOL.md; nothing thrown here escapes to `ws`, where an
 * exception in a `message` listener would take the process down.
 */
export function handleFrame (env: DispatchEnvironment, connection: Connection, raw: Buffer, isBinary: boolean): void {
  try {
    const receivedAt = performance.now()
    connection.lastMessageAt = Math.floor(receivedAt)
    const metrics = connection.served.metrics
    if (isBinary) {
      metrics.frameReceived(UNKNOWN_TYPE_LABEL, raw.length)
      handleBinary(connection, raw)
      return
    }
    const parsed = parseEnvelope(raw.toString('utf8'), env.maxNestingDepth)
    if (!parsed.ok) {
      metrics.frameReceived(UNKNOWN_TYPE_LABEL, raw.length)
      const { id, code, message } = parsed.failure
      // Malformed frames spend budget too, or a flood of them would never be limited.
      if (withinBudget(connection, id, UNKNOWN_TYPE_LABEL, undefined)) refuse(connection, id, UNKNOWN_TYPE_LABEL, code, message, 'ws.protocol_error')
      return
    }
    const { envelope } = parsed
    const message = connection.declared.messages.get(envelope.type) ?? env.commands.get(envelope.type)
    const label = message === undefined ? UNKNOWN_TYPE_LABEL : envelope.type
    metrics.frameReceived(label, raw.length)
    // Started as soon as the type is known: budget, validation, handler and reply happen inside.
    const span = startMessageSpan({
      route: connection.route,
      type: label,
      connectionId: connection.id,
      messageId: envelope.id,
      size: raw.length,
      traceparent: envelope.traceparent,
      connectionSpan: connection.upgradeSpan
    }, env.traceSampleRatio)
    const context = new HandlerContext(env, connection, envelope, message, label, receivedAt, span)
    // With the span active, every line logged about this message carries its trace id.
    withSpan(span, runPipeline, context)
  } catch (err) {
    connection.log.error({ err }, 'ws.internal_error')
    connection.close(CloseCode.INTERNAL_ERROR, 'internal error')
  }
}

function runPipeline (context: HandlerContext): void {
  context.run()
}

function handleBinary (connection: Connection, raw: Buffer): void {
  const policy = connection.declared.binary
  if (policy === 'close') {
    connection.close(CloseCode.UNSUPPORTED_DATA, 'binary frames are not accepted')
    return
  }
  if (!withinBudget(connection, undefined, UNKNOWN_TYPE_LABEL, undefined)) return
  if (policy === 'error') {
    refuse(connection, undefined, UNKNOWN_TYPE_LABEL, ErrorCode.BINARY_NOT_SUPPORTED, 'this route accepts text frames only', 'ws.protocol_error')
    return
  }
  connection.handlerStarted()
  Promise.resolve()
    .then(() => policy(raw, connection))
    .catch((err: unknown) => {
      connection.served.metrics.messageError(UNKNOWN_TYPE_LABEL, ErrorCode.HANDLER_ERROR)
      connection.log.error({ err }, 'ws.handler_error')
      connection.sendError(undefined, ErrorCode.HANDLER_ERROR, 'the handler failed to process this message')
    })
    .finally(() => connection.handlerFinished())
}
