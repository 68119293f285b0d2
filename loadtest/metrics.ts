import type { ScenarioName } from './scenario-names.js'

/** How a metric's threshold values are written: latencies in ms/s/us, ratios in % or fractions, bytes in B/KB/MB/GB. */
export type MetricKind = 'latency' | 'ratio' | 'count' | 'rate' | 'bytes'

export interface MetricDefinition {
  name: string
  kind: MetricKind
  description: string
  scenarios: readonly ScenarioName[]
}

const ALL: readonly ScenarioName[] = ['connect', 'echo', 'fanout', 'churn', 'soak']
const PERCENTILES = [['p50', 'median'], ['p90', '90th percentile'], ['p99', '99th percentile'], ['p99.9', '99.9th percentile'], ['min', 'fastest'], ['mean', 'mean'], ['max', 'slowest']] as const

function latencyFamily (prefix: string, what: string, scenarios: readonly ScenarioName[]): MetricDefinition[] {
  return PERCENTILES.map(([suffix, label]) => ({ name: `${prefix}${suffix}`, kind: 'latency', description: `${label} ${what}`, scenarios }))
}

/**
 * Every number a report carries under `metrics`, which is also what thresholds may name. The
 * unprefixed latencies are the scenario's main measurement, so `p99<50ms` means the same kind
 * of thing in every scenario: the time users wait.
 */
export const METRICS: readonly MetricDefinition[] = [
  ...latencyFamily('', 'of the scenario\'s main latency: reply (echo, soak), delivery (fanout), handshake (connect, churn)', ALL),
  ...latencyFamily('connect_', 'handshake time, upgrade request to `$welcome`', ALL),
  ...latencyFamily('reconnect_', 'time from an unrequested close to the next `$welcome`', ['churn', 'fanout']),
  { name: 'rate', kind: 'rate', description: 'main throughput per second: replies (echo, soak), deliveries (fanout), connections opened (connect, churn)', scenarios: ALL },
  { name: 'requests', kind: 'count', description: 'messages sent that expect an answer (echo, soak: requests; fanout: publishes; connect, churn: handshakes attempted)', scenarios: ALL },
  { name: 'errors', kind: 'ratio', description: 'failed operations / attempted ones: `$error` replies and timeouts (echo, soak, fanout publishes), failed handshakes (connect, churn)', scenarios: ALL },
  { name: 'error_count', kind: 'count', description: 'failed operations, as counted by `errors`', scenarios: ALL },
  { name: 'timeouts', kind: 'count', description: 'requests or handshakes that got no answer within --timeout', scenarios: ALL },
  { name: 'connect_errors', kind: 'ratio', description: 'failed handshakes / attempted handshakes', scenarios: ALL },
  { name: 'connections', kind: 'count', description: 'most connections open at once', scenarios: ALL },
  { name: 'unexpected_closes', kind: 'count', description: 'connections the server (or the network) closed without being asked', scenarios: ALL },
  { name: 'loss', kind: 'ratio', description: 'expected deliveries that never arrived / expected deliveries', scenarios: ['fanout'] },
  { name: 'loss_count', kind: 'count', description: 'expected deliveries that never arrived', scenarios: ['fanout'] },
  { name: 'duplicates', kind: 'count', description: 'events a subscriber received twice (same publisher and sequence)', scenarios: ['fanout'] },
  { name: 'out_of_order', kind: 'count', description: 'events with an offset below one the subscriber had already received', scenarios: ['fanout'] },
  { name: 'p50_drift', kind: 'ratio', description: 'last interval\'s p50 / first interval\'s − 1', scenarios: ['soak'] },
  { name: 'p99_drift', kind: 'ratio', description: 'last interval\'s p99 / first interval\'s − 1', scenarios: ['soak'] },
  { name: 'rate_drift', kind: 'ratio', description: 'last interval\'s throughput / first interval\'s − 1', scenarios: ['soak'] },
  { name: 'memory_drift', kind: 'ratio', description: 'server resident memory, last sample / first − 1 (needs --metrics-url)', scenarios: ['soak'] },
  { name: 'memory_growth', kind: 'bytes', description: 'server resident memory, last sample − first (needs --metrics-url)', scenarios: ['soak'] }
]

export function findMetric (name: string): MetricDefinition | undefined {
  return METRICS.find((metric) => metric.name === name)
}
