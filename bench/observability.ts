/*
 * `npm run bench` (third part): what observability costs the server per message, in one run.
 * The example app's /ws route at a fixed rate, with metrics off and on, and with the app's
 * OpenTelemetry setup (app/otel.ts) exporting over OTLP to a loopback sink at sampling ratios
 * 0.01 and 1.0. Runs are interleaved; each figure is the median of BENCH_RUNS runs.
 */
import { once } from 'node:events'
import { createServer } from 'node:http'
import { RUNS, measureEcho, median, spread, type EchoSample, type PinnedOptions } from './harness.js'

/** Stands in for Jaeger's OTLP port: reads and discards what it is sent. */
const sink = createServer((request, response) => {
  request.resume()
  request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end())
})
sink.listen(0, '127.0.0.1')
await once(sink, 'listening')
const sinkUrl = `http://127.0.0.1:${(sink.address() as { port: number }).port}`

const tracing = (ratio: string): PinnedOptions => ({
  nodeArgs: ['--import', './app/otel.ts'],
  env: {
    OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: ratio
  }
})

interface Variant {
  label: string
  kind: 'metrics-on' | 'metrics-off'
  options?: PinnedOptions
  /** The variant this one adds to, by index. */
  baseline?: number
}

const VARIANTS: Variant[] = [
  { label: 'metrics off, no tracing', kind: 'metrics-off' },
  { label: 'metrics on, no tracing', kind: 'metrics-on', baseline: 0 },
  { label: 'metrics on, tracing sampled at 0.01', kind: 'metrics-on', options: tracing('0.01'), baseline: 1 },
  { label: 'metrics on, tracing sampled at 1.0', kind: 'metrics-on', options: tracing('1.0'), baseline: 1 }
]
const RATE = Number(process.env.BENCH_OBSERVABILITY_RATE ?? 20_000)
const plan = { connections: 50, ratePerSecond: RATE }

const samples = VARIANTS.map((): EchoSample[] => [])
for (let run = 0; run < RUNS; run++) {
  for (const [index, variant] of VARIANTS.entries()) samples[index]!.push(await measureEcho(variant.kind, plan, variant.options))
}
sink.close()

const cpu = (index: number): number => median(samples[index]!.map((sample) => sample.cpuMicrosPerMessage))
const [metricsOff, metricsOn, sampledRarely, sampledAlways] = [0, 1, 2, 3].map(cpu) as [number, number, number, number]
console.log(`\nobservability overhead: ${RATE.toLocaleString('en')} msg/s over ${plan.connections} connections; ${RUNS} runs, median (min–max)`)
console.log('| server | msg/s | server CPU µs/msg | CPU/msg vs |')
console.log('| --- | ---: | ---: | --- |')
for (const [index, variant] of VARIANTS.entries()) {
  const list = samples[index]!
  const { baseline } = variant
  const versus = baseline === undefined ? '' : `${(cpu(index) / cpu(baseline)).toFixed(2)}× ${VARIANTS[baseline]!.label}`
  console.log(`| ${variant.label} | ${spread(list.map((s) => s.messagesPerSecond), 0)} | ${spread(list.map((s) => s.cpuMicrosPerMessage), 2)} | ${versus} |`)
}
const metricsCost = metricsOn / metricsOff - 1
const rareCost = sampledRarely / metricsOn - 1
console.log('')
console.log(`target: metrics add ≤ 5% server CPU per message — ${(metricsCost * 100).toFixed(1)}% ${metricsCost <= 0.05 ? 'met' : 'MISSED'}`)
console.log(`target: tracing at ratio 0.01 adds ≤ 10% — ${(rareCost * 100).toFixed(1)}% ${rareCost <= 0.10 ? 'met' : 'MISSED'}`)
console.log(`tracing at ratio 1.0 adds ${((sampledAlways / metricsOn - 1) * 100).toFixed(1)}% (every message a span, exported in batches)`)
