import { context, trace } from '@opentelemetry/api'
import { isUntracedContext } from './tracing.js'

/** Trace ids as log fields, named as OpenTelemetry's log data model and Grafana's derived fields expect. */
export interface TraceLogFields {
  trace_id?: string
  span_id?: string
  trace_flags?: string
}

/**
 * A pino `mixin`: every line written while a span is active carries its `trace_id` and
 * `span_id`, so a log line leads to its trace. The plugin runs each message's pipeline with
 * its span active; give this to the logger (`Fastify({ logger: { mixin: traceLogFields } })`)
 * and the plugin's lines, handlers' lines and request lines all carry them.
 */
export function traceLogFields (): TraceLogFields {
  const spanContext = trace.getSpanContext(context.active())
  // A new object every time: pino merges the line's fields into what the mixin returns.
  if (spanContext === undefined || !trace.isSpanContextValid(spanContext) || isUntracedContext(spanContext)) return {}
  return {
    trace_id: spanContext.traceId,
    span_id: spanContext.spanId,
    trace_flags: `0${spanContext.traceFlags.toString(16)}`
  }
}
