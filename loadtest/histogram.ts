import { createHistogram, type RecordableHistogram } from 'node:perf_hooks'

/** Samples are whole microseconds: HDR histograms hold integers, and 1 µs is below any network latency. */
const LOWEST_US = 1
/** A minute: anything slower is recorded as a minute rather than dropped. */
const HIGHEST_US = 60_000_000
const SIGNIFICANT_FIGURES = 3

export interface LatencySummary {
  count: number
  /** Milliseconds, like every latency in reports. */
  min: number
  mean: number
  p50: number
  p90: number
  p99: number
  p999: number
  max: number
}

/** Every histogram of a run has the same bounds, so that `add()` merges them without loss. */
export function newHistogram (): RecordableHistogram {
  return createHistogram({ lowest: LOWEST_US, highest: HIGHEST_US, figures: SIGNIFICANT_FIGURES })
}

export function recordMs (histogram: RecordableHistogram, ms: number): void {
  histogram.record(Math.min(HIGHEST_US, Math.max(LOWEST_US, Math.round(ms * 1_000))))
}

export function mergeInto (target: RecordableHistogram, source: RecordableHistogram): void {
  if (source.count > 0) target.add(source)
}

export function summarize (histogram: RecordableHistogram): LatencySummary | undefined {
  if (histogram.count === 0) return undefined
  const ms = (us: number): number => us / 1_000
  return {
    count: histogram.count,
    min: ms(histogram.min),
    mean: ms(histogram.mean),
    p50: ms(histogram.percentile(50)),
    p90: ms(histogram.percentile(90)),
    p99: ms(histogram.percentile(99)),
    p999: ms(histogram.percentile(99.9)),
    max: ms(histogram.max)
  }
}
