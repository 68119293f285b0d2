import { FastifyOtelInstrumentation } from '@fastify/otel'
import { NodeSDK } from '@opentelemetry/sdk-node'
import { ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace-base'
import { realtimeSampler } from '../plugin/index.js'
import { DEFAULT_SERVICE_NAME, traceSampleRatio, tracesEndpoint } from './config.js'

/*
 * Tracing for the example app, loaded with `--import` before anything else: @fastify/otel
 * instruments every Fastify instance created after it starts. Off unless an OTLP endpoint is
 * configured, so `npm start` needs no collector. The SDK reads the standard variables itself:
 * OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf unless set),
 * OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, OTEL_SDK_DISABLED,
 * OTEL_BSP_*.
 */

const enabled = tracesEndpoint(process.env) !== undefined

// Metrics go to Prometheus through /metrics and logs to Loki: only traces leave over OTLP,
// unless these variables say otherwise. With no meter provider, the SDK's own span counters
// cost nothing per span.
process.env.OTEL_METRICS_EXPORTER ??= 'none'
process.env.OTEL_LOGS_EXPORTER ??= 'none'
// Serializing a batch blocks the event loop: 512 spans (the SDK's default) hold every
// connection's messages for tens of milliseconds, 64 for a few, and a batch a second keeps
// the queue short at the rates a node sees.
process.env.OTEL_BSP_MAX_EXPORT_BATCH_SIZE ??= '64'
process.env.OTEL_BSP_SCHEDULE_DELAY ??= '1000'

/**
 * A ratio sampler from the variables, with the message spans the plugin sampled itself at
 * the same ratio (`traceSampleRatio`) kept rather than sampled again; undefined leaves the
 * SDK to read the variables.
 */
function sampler (): Sampler | undefined {
  const ratio = traceSampleRatio(process.env)
  if (ratio === 1) return undefined
  const byTraceId = new TraceIdRatioBasedSampler(ratio)
  return realtimeSampler(process.env.OTEL_TRACES_SAMPLER === 'traceidratio' ? byTraceId : new ParentBasedSampler({ root: byTraceId }))
}

const sdk = enabled
  ? new NodeSDK({
    // Set only when the environment does not name the service: OTEL_SERVICE_NAME wins.
    serviceName: process.env.OTEL_SERVICE_NAME === undefined || process.env.OTEL_SERVICE_NAME === '' ? DEFAULT_SERVICE_NAME : undefined,
    sampler: sampler(),
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        requestHook: (span, request) => {
          // The query stays out of traces: a browser's WebSocket token rides in `?token=`.
          // Fastify's router ends the path at the first `?` or `#` (`/ws#token=` authenticates
          // too), and `@fastify/otel` has put the raw URL in `url.path`: replaced first.
          const path = request.url.split(/[?#]/, 1)[0] as string
          span.setAttribute('url.path', path)
          // Named as HTTP semantic conventions name server spans, `GET /ws`, rather than `request`.
          span.updateName(`${request.method} ${request.routeOptions.url ?? path}`)
        }
      })
    ]
  })
  : undefined

sdk?.start()

/** Exports the spans still buffered; call it before the process exits. */
export async function shutdownTelemetry (): Promise<void> {
  await sdk?.shutdown()
}
