/*
 * What observability costs the server per message: the example app's route at a fixed rate with
 * metrics off and on, and with the app's OpenTelemetry setup (app/otel.ts) exporting over OTLP
 * to a loopback sink at sampling ratios 0.01 and 1.0.
 */
import { RUNS, measureEcho, median, spread, startOtlpSink, tracing, type EchoSample, type Peer } from './harness.js'
import { verdict, type Section } from './report.js'

const RATE = Number(process.env.BENCH_OBSERVABILITY_RATE ?? 20_000)

export async function runObservability (): Promise<Section> {
  const sink = await startOtlpSink()
  const variants: Array<Peer & { baseline?: number }> = [
    { label: 'metrics off, no tracing', kind: 'metrics-off' },
    { label: 'metrics on, no tracing', kind: 'metrics-on', baseline: 0 },
    { label: 'metrics on, tracing sampled at 0.01', kind: 'metrics-on', options: tracing(sink.url, '0.01'), baseline: 1 },
    { label: 'metrics on, tracing sampled at 1.0', kind: 'metrics-on', options: tracing(sink.url, '1.0'), baseline: 1 }
  ]
  const plan = { connections: 50, ratePerSecond: RATE }
  const samples = variants.map((): EchoSample[] => [])
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const [index, variant] of variants.entries()) samples[index]!.push(await measureEcho(variant, plan))
    }
  } finally {
    sink.close()
  }
  const cpu = (index: number): number => median(samples[index]!.map((sample) => sample.cpuMicrosPerMessage))
  const p99 = (index: number): number => median(samples[index]!.map((sample) => sample.latency?.p99 ?? NaN))
  const body = ['| server | server CPU µs/msg | latency p99 ms | CPU/msg vs |', '| --- | ---: | ---: | --- |']
  for (const [index, variant] of variants.entries()) {
    const list = samples[index]!
    const { baseline } = variant
    const versus = baseline === undefined ? '' : `${(cpu(index) / cpu(baseline)).toFixed(2)}× ${variants[baseline]!.label}`
    body.push(`| ${variant.label} | ${spread(list.map((s) => s.cpuMicrosPerMessage), 2)} | ${spread(list.map((s) => s.latency?.p99 ?? NaN), 2)} | ${versus} |`)
  }
  const metricsCost = cpu(1) / cpu(0)
  const rareCost = cpu(2) / cpu(1)
  const rareLatency = p99(2) / p99(1)
  const fullCost = cpu(3) / cpu(1)
  return {
    title: 'Observability overhead',
    method: `The example app's chat route on a bare Fastify, ${RATE.toLocaleString('en')} msg/s over ${plan.connections} connections; tracing is app/otel.ts (NodeSDK, ` +
      'batch span processor, OTLP over HTTP to a loopback sink that discards what it gets).',
    body,
    verdicts: [
      verdict('metrics add ≤ 5% server CPU per message', metricsCost, metricsCost <= 1.05),
      verdict('tracing sampled at 0.01: server CPU per message ≤ 1.10× metrics only', rareCost, rareCost <= 1.10),
      verdict(`tracing sampled at 0.01: p99 at ${RATE.toLocaleString('en')} msg/s ≤ 1.5× metrics only`, rareLatency, rareLatency <= 1.5),
      verdict('tracing sampled at 1.0: server CPU per message ≤ 1.6× metrics only', fullCost, fullCost <= 1.6)
    ]
  }
}
