import { SamplingDecision, trace, type Attributes, type Context, type Link, type Sampler, type SamplingResult, type SpanKind } from '@opentelemetry/api'
import { SpanAttribute } from './tracing.js'

const KEEP: SamplingResult = Object.freeze({ decision: SamplingDecision.RECORD_AND_SAMPLED })

/**
 * The SDK's sampler, in front of which message spans the plugin already sampled
 * (`traceSampleRatio` below 1) are kept: sampled twice, a message would be traced at the
 * square of the ratio. Every other span, children of those included, goes to `sampler`.
 *
 * ```ts
 * new NodeSDK({ sampler: realtimeSampler(new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.01) })) })
 * ```
 */
export function realtimeSampler (sampler: Sampler): Sampler {
  return {
    shouldSample (context: Context, traceId: string, spanName: string, spanKind: SpanKind, attributes: Attributes, links: Link[]): SamplingResult {
      if (typeof attributes[SpanAttribute.SAMPLE_RATIO] === 'number' && trace.getSpanContext(context) === undefined) return KEEP
      return sampler.shouldSample(context, traceId, spanName, spanKind, attributes, links)
    },
    toString: () => `RealtimeSampler{${sampler.toString()}}`
  }
}
