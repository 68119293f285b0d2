import { findMetric, type MetricKind } from './metrics.js'
import type { ScenarioName } from './scenario-names.js'

export type Operator = '<' | '<=' | '>' | '>=' | '==' | '!='

export interface Threshold {
  /** As the user wrote it, to name it in the report. */
  expression: string
  metric: string
  operator: Operator
  /** In the metric's report unit: ms, fraction, per second, count or bytes. */
  value: number
}

export interface ThresholdResult extends Threshold {
  actual: number | undefined
  passed: boolean
}

export class ThresholdError extends Error {
  override name = 'ThresholdError'
}

// Longest operators first, so `<=` is not read as `<` followed by `=5`.
const GRAMMAR = /^\s*([a-z][a-z0-9_.]*)\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*([a-zµ%/]*)\s*$/i

const UNITS: Record<MetricKind, Record<string, number>> = {
  latency: { '': 1, ms: 1, s: 1_000, us: 0.001, µs: 0.001 },
  ratio: { '': 1, '%': 0.01 },
  count: { '': 1 },
  rate: { '': 1, '/s': 1 },
  bytes: { '': 1, b: 1, kb: 1_024, mb: 1_048_576, gb: 1_073_741_824 }
}

/**
 * `<metric> <operator> <number>[unit]`, e.g. `p99<50ms`, `errors<1%`, `rate>=10000`, `loss==0`,
 * `memory_growth<50MB`. A bare number is in the metric's report unit (ms for latencies).
 */
export function parseThreshold (expression: string, scenario: ScenarioName): Threshold {
  const match = GRAMMAR.exec(expression)
  if (match === null) {
    throw new ThresholdError(`threshold "${expression}" must read <metric><operator><number>[unit], like p99<50ms or errors<1%; operators: < <= > >= == !=`)
  }
  const [, metricName = '', operator = '<', number = '0', rawUnit = ''] = match
  const metric = findMetric(metricName.toLowerCase())
  if (metric === undefined) throw new ThresholdError(`threshold "${expression}": no metric named "${metricName}" (docs/LOADTEST.md lists them)`)
  if (!metric.scenarios.includes(scenario)) throw new ThresholdError(`threshold "${expression}": ${scenario} does not measure ${metric.name}`)
  const unit = rawUnit.toLowerCase()
  const scale = UNITS[metric.kind][unit]
  if (scale === undefined) {
    const allowed = Object.keys(UNITS[metric.kind]).filter(Boolean)
    throw new ThresholdError(`threshold "${expression}": ${metric.name} takes ${allowed.length > 0 ? allowed.join(', ') + ' or ' : ''}no unit, not "${rawUnit}"`)
  }
  return { expression: expression.trim(), metric: metric.name, operator: operator as Operator, value: Number(number) * scale }
}

/** A metric the run could not measure (no samples) fails its threshold: silence is not a pass. */
export function evaluateThresholds (thresholds: readonly Threshold[], metrics: Readonly<Record<string, number | undefined>>): ThresholdResult[] {
  return thresholds.map((threshold) => {
    const actual = metrics[threshold.metric]
    return { ...threshold, actual, passed: actual !== undefined && Number.isFinite(actual) && compare(actual, threshold.operator, threshold.value) }
  })
}

function compare (actual: number, operator: Operator, expected: number): boolean {
  switch (operator) {
    case '<': return actual < expected
    case '<=': return actual <= expected
    case '>': return actual > expected
    case '>=': return actual >= expected
    case '==': return actual === expected
    case '!=': return actual !== expected
  }
}
