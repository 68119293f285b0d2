import { context, INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type SpanContext } from '@opentelemetry/api'
import { TRACEPARENT } from '../protocol/frames.js'

/*
 * Spans through @opentelemetry/api only: with no SDK registered every call is a no-op, and the
 * application decides what is exported. One SERVER span per message, PRODUCER spans for
 * publishes, CONSUMER spans for deliveries, with W3C trace context carried through the broker.
 */

/** Span attribute names, written once. */
export const SpanAttribute = Object.freeze({
  ROUTE: 'ws.route',
  MESSAGE_TYPE: 'ws.message.type',
  CONNECTION_ID: 'ws.connection.id',
  MESSAGE_ID: 'ws.message.id',
  MESSAGE_SIZE: 'ws.message.size',
  ERROR_CODE: 'ws.error.code',
  /** On a message span the plugin sampled itself: the ratio it sampled at (`traceSampleRatio`). */
  SAMPLE_RATIO: 'ws.trace.sample_ratio',
  MESSAGING_SYSTEM: 'messaging.system',
  DESTINATION: 'messaging.destination.name',
  OPERATION: 'messaging.operation.type'
} as const)

const tracer = trace.getTracer('fastify-realtime')

/** The context a W3C `traceparent` names, or undefined when it is malformed or all zeros. */
export function contextFromTraceparent (traceparent: string | undefined): Context | undefined {
  if (traceparent === undefined) return undefined
  const match = TRACEPARENT.exec(traceparent)
  if (match === null || match[1] === 'ff' || /^0+$/.test(match[2] as string) || /^0+$/.test(match[3] as string)) return undefined
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[2] as string,
    spanId: match[3] as string,
    traceFlags: Number.parseInt(match[4] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true
  })
}

/** The W3C `traceparent` of a span, to carry across the broker. */
export function traceparentOf (span: Span): string | undefined {
  const spanContext = span.spanContext()
  // An untraced message's publishes carry nothing: no node starts a delivery span for them.
  if (!trace.isSpanContextValid(spanContext) || isUntracedContext(spanContext)) return undefined
  const { traceId, spanId, traceFlags } = spanContext
  return `00-${traceId}-${spanId}-${(traceFlags & TraceFlags.SAMPLED) === 1 ? '01' : '00'}`
}

/** What `@fastify/otel` decorates requests with, read by shape: the plugin needs only the API. */
interface InstrumentedRequest {
  opentelemetry?: () => { span?: Span | null }
}

/**
 * Sets the `url.path` of the request's `@fastify/otel` span to `path`: that instrumentation
 * records the raw URL there, query and all, so a `?token=` would be exported with the span.
 */
export function setRequestSpanPath (request: object, path: string): void {
  const instrumentation = (request as InstrumentedRequest).opentelemetry
  if (typeof instrumentation !== 'function') return
  const span = instrumentation.call(request).span
  if (span?.isRecording() === true) span.setAttribute('url.path', path)
}

/**
 * Ends the upgrade's HTTP span at the 101 and returns the context messages link to.
 * `@fastify/websocket` hijacks the reply, so the hooks that would end the span never run, and
 * a span left open is never exported. Without `@fastify/otel`, the active span is linked to
 * but left alone: whoever started it ends it.
 */
export function finishUpgradeSpan (request: object, route: string, connectionId: string): SpanContext | undefined {
  const instrumentation = (request as InstrumentedRequest).opentelemetry
  const span = typeof instrumentation === 'function' ? instrumentation.call(request).span : undefined
  if (span == null) return trace.getSpanContext(context.active())
  if (span.isRecording()) {
    span.setAttributes({ 'http.response.status_code': 101, [SpanAttribute.ROUTE]: route, [SpanAttribute.CONNECTION_ID]: connectionId })
  }
  span.end()
  return span.spanContext()
}

export interface MessageSpanFields {
  route: string
  type: string
  connectionId: string
  messageId: string | number | undefined
  size: number
  traceparent: string | undefined
  connectionSpan: SpanContext | undefined
}

/**
 * The active span of a message the plugin chose not to trace. Its context is valid and not
 * sampled, so that a parent-based sampler leaves what the handler starts untraced too; its ids
 * are the same for every such message, so logs do not carry them (`isUntracedContext`).
 */
const UNTRACED_SPAN = trace.wrapSpanContext({ traceId: '00000000000000000000000000000001', spanId: '0000000000000001', traceFlags: TraceFlags.NONE })
const UNTRACED_TRACE_ID = UNTRACED_SPAN.spanContext().traceId

/** True for the context of a message the plugin did not trace, and of whatever ran under it. */
export function isUntracedContext (spanContext: SpanContext): boolean {
  return spanContext.traceId === UNTRACED_TRACE_ID
}

const SERVER_SPAN = { kind: SpanKind.SERVER } as const

/**
 * `ws {type}`: a child of the client's `traceparent` when it sent one, which the SDK's sampler
 * decides on. Without one, a new trace linked to the connection's upgrade span, for one message
 * in `1 / sampleRatio`: asking the SDK about every message costs more than the message (ids,
 * the sampler, a span object each), so below 1 the plugin samples roots itself and marks those
 * it keeps for `realtimeSampler`.
 */
export function startMessageSpan (fields: MessageSpanFields, sampleRatio: number): Span {
  const parent = contextFromTraceparent(fields.traceparent)
  if (parent !== undefined) return recordAttributes(tracer.startSpan(`ws ${fields.type}`, SERVER_SPAN, parent), fields)
  if (sampleRatio < 1 && Math.random() >= sampleRatio) return UNTRACED_SPAN
  const attributes: Attributes | undefined = sampleRatio < 1 ? { [SpanAttribute.SAMPLE_RATIO]: sampleRatio } : undefined
  const span = tracer.startSpan(`ws ${fields.type}`, { kind: SpanKind.SERVER, attributes }, ROOT_CONTEXT)
  // Links and attributes only for spans that are kept: sampled out, a message pays nothing more.
  if (span.isRecording() && fields.connectionSpan !== undefined) span.addLink({ context: fields.connectionSpan })
  return recordAttributes(span, fields)
}

function recordAttributes (span: Span, fields: MessageSpanFields): Span {
  if (span.isRecording()) {
    span.setAttributes({
      [SpanAttribute.ROUTE]: fields.route,
      [SpanAttribute.MESSAGE_TYPE]: fields.type,
      [SpanAttribute.CONNECTION_ID]: fields.connectionId,
      [SpanAttribute.MESSAGE_SIZE]: fields.size
    })
    if (fields.messageId !== undefined) span.setAttribute(SpanAttribute.MESSAGE_ID, String(fields.messageId))
  }
  return span
}

/** Ends a span with the error code the client was answered with. */
export function endSpanWithError (span: Span, code: string): void {
  span.setAttribute(SpanAttribute.ERROR_CODE, code)
  span.setStatus({ code: SpanStatusCode.ERROR, message: code })
  span.end()
}

/**
 * Runs `fn(...args)` with `span` as the active span, so what it logs carries the span's ids and
 * what it starts (publishes, queries) nests under it. Arguments rather than a closure: this
 * runs once per message.
 */
export function withSpan<A extends unknown[], T> (span: Span, fn: (...args: A) => T, ...args: A): T {
  // With no SDK a span has no context to propagate; any other span does, sampled or not, so
  // that its children are sampled out with it. What the SDK or the plugin made is valid.
  if (span.spanContext() === INVALID_SPAN_CONTEXT) return fn(...args)
  return context.with(trace.setSpan(ROOT_CONTEXT, span), fn, undefined, ...args)
}

/** `publish {event}`: a PRODUCER span under whatever is active (a handler's message span). */
export function startPublishSpan (topic: string, event: string): Span {
  return tracer.startSpan(`publish ${event}`, {
    kind: SpanKind.PRODUCER,
    attributes: { [SpanAttribute.MESSAGING_SYSTEM]: 'fastify-realtime', [SpanAttribute.DESTINATION]: topic, [SpanAttribute.OPERATION]: 'send' }
  })
}

/** `deliver {event}`: one CONSUMER span per entry per node, in the publisher's trace. */
export function startDeliverySpan (topic: string, event: string, traceparent: string | undefined): Span {
  return tracer.startSpan(`deliver ${event}`, {
    kind: SpanKind.CONSUMER,
    attributes: { [SpanAttribute.MESSAGING_SYSTEM]: 'fastify-realtime', [SpanAttribute.DESTINATION]: topic, [SpanAttribute.OPERATION]: 'receive' }
  }, contextFromTraceparent(traceparent) ?? ROOT_CONTEXT)
}
