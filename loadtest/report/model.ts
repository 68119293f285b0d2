import type { Options } from '../args.js'
import type { IntervalRow, TimelinePoint } from '../aggregate.js'
import { summarize, type LatencySummary } from '../histogram.js'
import { PROFILES } from '../profile.js'
import type { MemorySample, RunResult } from '../run.js'
import { evaluateThresholds, type ThresholdResult } from '../thresholds.js'

export const REPORT_VERSION = 1

export interface FanoutTotals {
  subscribers: number
  publishes: number
  acknowledged: number
  /** Acknowledged publishes × subscribers. */
  expected: number
  received: number
  lost: number
  duplicates: number
  outOfOrder: number
  /** Events on the topic that this run did not publish. */
  foreign: number
}

/** The machine-readable report (`--json`); the text and HTML reports are views of it. */
export interface Report {
  tool: 'fastify-realtime-loadtest'
  reportVersion: number
  scenario: string
  url: string
  runId: string
  startedAt: string
  measuredSeconds: number
  rampSeconds?: number
  workers: number
  interrupted: boolean
  /** The run's settings; header values are left out, they may carry credentials. */
  settings: Record<string, unknown>
  /** Flat numbers, milliseconds for latencies and fractions for ratios: what thresholds name. */
  metrics: Record<string, number | undefined>
  latency: Record<string, LatencySummary>
  /** Which entry of `latency` the unprefixed metrics (p50, p99…) come from. */
  mainLatency: string
  latencyLabel: string
  throughputLabel: string
  counters: Record<string, number>
  errorsByCode: Record<string, number>
  closesByCode: Record<string, number>
  connectFailures: Record<string, number>
  fanout?: FanoutTotals
  timeline: TimelinePoint[]
  intervals?: IntervalRow[]
  memory?: MemorySample[]
  thresholds: ThresholdResult[]
  warnings: string[]
  passed: boolean
}

export function buildReport (result: RunResult): Report {
  const { options, aggregate } = result
  const profile = PROFILES[options.scenario]
  const counters = aggregate.counters
  const counter = (name: string): number => counters[name] ?? 0
  const measuredSeconds = result.measuredMs / 1_000
  const latency: Record<string, LatencySummary> = {}
  for (const [name, histogram] of Object.entries(aggregate.histograms)) {
    const summary = summarize(histogram)
    if (summary !== undefined) latency[name] = summary
  }

  const metrics: Record<string, number | undefined> = {}
  latencyMetrics(metrics, '', latency[profile.latency])
  latencyMetrics(metrics, 'connect_', latency.connect)
  latencyMetrics(metrics, 'reconnect_', latency.reconnect)
  const rateSeconds = options.scenario === 'connect' ? (result.rampMs ?? result.measuredMs) / 1_000 : measuredSeconds
  metrics.rate = rateSeconds > 0 ? counter(profile.throughput) / rateSeconds : undefined
  metrics.requests = counter(profile.attempts)
  metrics.error_count = counter(profile.failures)
  metrics.errors = ratio(counter(profile.failures), counter(profile.attempts))
  metrics.timeouts = counter('timeouts')
  metrics.connect_errors = ratio(counter('connect_failures'), counter('connect_attempts'))
  metrics.connections = aggregate.peakOpen
  metrics.unexpected_closes = counter('unexpected_closes')

  let fanout: FanoutTotals | undefined
  if (options.scenario === 'fanout') {
    const expected = counter('publishes_acked') * options.subscribers
    fanout = {
      subscribers: options.subscribers,
      publishes: counter('requests'),
      acknowledged: counter('publishes_acked'),
      expected,
      received: counter('deliveries'),
      lost: Math.max(0, expected - counter('deliveries')),
      duplicates: counter('duplicates'),
      outOfOrder: counter('out_of_order'),
      foreign: counter('foreign_events')
    }
    metrics.loss_count = fanout.lost
    metrics.loss = ratio(fanout.lost, expected)
    metrics.duplicates = fanout.duplicates
    metrics.out_of_order = fanout.outOfOrder
  }

  let intervals: IntervalRow[] | undefined
  if (options.scenario === 'soak') {
    intervals = aggregate.intervals
    driftMetrics(metrics, intervals, options.intervalMs / 1_000)
    const first = result.memory[0]
    const last = result.memory.at(-1)
    if (first !== undefined && last !== undefined && last !== first) {
      metrics.memory_growth = last.bytes - first.bytes
      metrics.memory_drift = last.bytes / first.bytes - 1
    }
  }

  const thresholds = evaluateThresholds(options.thresholds, metrics)
  return {
    tool: 'fastify-realtime-loadtest',
    reportVersion: REPORT_VERSION,
    scenario: options.scenario,
    url: options.url,
    runId: result.runId,
    startedAt: new Date(result.startedAt).toISOString(),
    measuredSeconds,
    ...(result.rampMs === undefined ? {} : { rampSeconds: result.rampMs / 1_000 }),
    workers: result.workers,
    interrupted: result.interrupted,
    settings: settings(options),
    metrics,
    latency,
    mainLatency: profile.latency,
    latencyLabel: profile.latencyLabel,
    throughputLabel: profile.throughputLabel,
    counters,
    errorsByCode: grouped(counters, 'errors:'),
    closesByCode: grouped(counters, 'closes:'),
    connectFailures: grouped(counters, 'connect_failures:'),
    ...(fanout === undefined ? {} : { fanout }),
    timeline: aggregate.timeline,
    ...(intervals === undefined ? {} : { intervals }),
    ...(options.metricsUrl === undefined ? {} : { memory: result.memory }),
    thresholds,
    warnings: [...result.warnings, ...warnings(result, metrics)],
    passed: thresholds.every((threshold) => threshold.passed)
  }
}

function latencyMetrics (metrics: Record<string, number | undefined>, prefix: string, summary: LatencySummary | undefined): void {
  if (summary === undefined) return
  Object.assign(metrics, {
    [`${prefix}p50`]: summary.p50,
    [`${prefix}p90`]: summary.p90,
    [`${prefix}p99`]: summary.p99,
    [`${prefix}p99.9`]: summary.p999,
    [`${prefix}min`]: summary.min,
    [`${prefix}mean`]: summary.mean,
    [`${prefix}max`]: summary.max
  })
}

/**
 * First against last interval. A last interval cut to under half its length (a stop) is too
 * noisy to compare and the one before it is used.
 */
function driftMetrics (metrics: Record<string, number | undefined>, intervals: IntervalRow[], intervalSeconds: number): void {
  const complete = intervals.filter((row, i) => i < intervals.length - 1 || row.endSecond - row.startSecond >= intervalSeconds / 2)
  const first = complete[0]
  const last = complete.at(-1)
  if (first === undefined || last === undefined || first === last) return
  const drift = (a: number | undefined, b: number | undefined): number | undefined => a === undefined || b === undefined || a === 0 ? undefined : b / a - 1
  metrics.p50_drift = drift(first.p50, last.p50)
  metrics.p99_drift = drift(first.p99, last.p99)
  metrics.rate_drift = drift(first.throughput, last.throughput)
}

function ratio (part: number, whole: number): number | undefined {
  return whole > 0 ? part / whole : undefined
}

function grouped (counters: Record<string, number>, prefix: string): Record<string, number> {
  return Object.fromEntries(Object.entries(counters).filter(([name]) => name.startsWith(prefix)).map(([name, n]) => [name.slice(prefix.length), n]).sort(([a], [b]) => String(a).localeCompare(String(b))))
}

const SETTINGS: Record<string, ReadonlyArray<keyof Options>> = {
  connect: ['connections', 'connectRate', 'concurrency', 'durationMs', 'timeoutMs', 'backoffMs'],
  echo: ['connections', 'pipeline', 'rate', 'messageType', 'data', 'durationMs', 'warmupMs', 'timeoutMs'],
  soak: ['connections', 'rate', 'messageType', 'data', 'durationMs', 'warmupMs', 'intervalMs', 'metricsUrl', 'timeoutMs'],
  fanout: ['subscribers', 'publishers', 'rate', 'topic', 'messageType', 'data', 'durationMs', 'warmupMs', 'settleMs', 'timeoutMs', 'backoffMs'],
  churn: ['connections', 'holdMs', 'backoffMs', 'durationMs', 'warmupMs', 'timeoutMs']
}

function settings (options: Options): Record<string, unknown> {
  const picked: Record<string, unknown> = Object.fromEntries(SETTINGS[options.scenario]!.map((key) => [key, options[key]]))
  if (options.scenario === 'echo' && options.rate === undefined) delete picked.rate
  else if (options.scenario === 'echo') delete picked.pipeline
  return { ...picked, headers: Object.keys(options.headers), thresholds: options.thresholds.map((threshold) => threshold.expression) }
}

function warnings (result: RunResult, metrics: Record<string, number | undefined>): string[] {
  const { options, aggregate, messagesPerSecond: budget } = result
  const found: string[] = []
  if (result.interrupted) found.push('interrupted (SIGINT): the report covers what was measured until then')
  if (budget !== undefined && budget > 0) {
    const perConnection = options.scenario === 'fanout'
      ? (options.rate ?? 0) / options.publishers
      : options.scenario === 'echo' || options.scenario === 'soak'
        ? options.rate !== undefined ? options.rate / options.connections : (metrics.rate ?? 0) / options.connections
        : 0
    if (perConnection > budget) {
      found.push(`${round(perConnection)} messages/s per ${options.scenario === 'fanout' ? 'publisher' : 'connection'} exceeds the server's budget of ${budget} (limits.messagesPerSecond in $welcome): expect RATE_LIMITED errors and 1008 closes. Raise the budget (the example app: WS_MESSAGES_PER_SECOND) or spread the rate over more ${options.scenario === 'fanout' ? '--publishers' : '--connections'}`)
    }
  }
  const skipped = aggregate.counters.skipped_sends ?? 0
  if (skipped > 0) found.push(`${skipped} scheduled sends were skipped (no open connection, or ${options.scenario === 'fanout' ? 'the publisher' : 'a connection'} had too many unanswered messages): the rate offered was below --rate`)
  if ((aggregate.counters.foreign_events ?? 0) > 0) found.push(`${aggregate.counters.foreign_events} events on ${options.topic} came from elsewhere (another run or the application) and were not counted`)
  return found
}

function round (n: number): number {
  return Math.round(n * 10) / 10
}
