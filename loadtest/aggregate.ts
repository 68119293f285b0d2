import type { RecordableHistogram } from 'node:perf_hooks'
import { mergeInto, newHistogram, summarize } from './histogram.js'
import type { ScenarioProfile } from './profile.js'
import type { Tick } from './recorder.js'

/** One second of the run, all workers together. */
export interface TimelinePoint {
  /** Seconds since measuring started. */
  second: number
  throughput: number
  errors: number
  /** Milliseconds; absent in a second without samples. */
  p50?: number
  p99?: number
  open: number
}

/** One reporting interval (soak). */
export interface IntervalRow {
  index: number
  startSecond: number
  endSecond: number
  samples: number
  throughput: number
  errors: number
  p50?: number
  p99?: number
  /** Server resident memory sampled at the interval's end, bytes. */
  memoryBytes?: number
}

interface Bucket {
  counters: Record<string, number>
  latency: RecordableHistogram
  open: number
}

const TICK_MS = 1_000
/** Ticks of different workers for the same second arrive within this many seconds of each other. */
const LATE_SECONDS = 2

/**
 * Merges the workers' ticks into run totals, a per-second timeline and per-interval rows. Only
 * summaries of past seconds are kept: a histogram per second of a two-hour soak would not fit.
 */
export class Aggregate {
  readonly counters: Record<string, number> = {}
  readonly histograms: Record<string, RecordableHistogram> = {}
  readonly timeline: TimelinePoint[] = []
  readonly intervals: IntervalRow[] = []
  peakOpen = 0
  /** Epoch ms where the timeline starts; ticks before it count in totals only. */
  origin: number
  readonly #profile: ScenarioProfile
  readonly #intervalMs: number | undefined
  readonly #openByWorker: number[]
  readonly #seconds = new Map<number, Bucket>()
  readonly #intervalBuckets = new Map<number, Bucket>()
  #measuredSeconds = Number.POSITIVE_INFINITY

  constructor (profile: ScenarioProfile, workers: number, origin: number, intervalMs?: number) {
    this.#profile = profile
    this.#openByWorker = new Array<number>(workers).fill(0)
    this.origin = origin
    this.#intervalMs = intervalMs
  }

  get open (): number {
    return this.#openByWorker.reduce((sum, open) => sum + open, 0)
  }

  add (worker: number, tick: Tick): void {
    for (const [name, amount] of Object.entries(tick.counters)) this.counters[name] = (this.counters[name] ?? 0) + amount
    for (const [name, histogram] of Object.entries(tick.histograms)) mergeInto(this.histograms[name] ??= newHistogram(), histogram)
    this.#openByWorker[worker] = tick.open
    const open = this.open
    this.peakOpen = Math.max(this.peakOpen, open)

    // A tick covers the second before it: its middle decides where it belongs. One that ends
    // after measuring began holds measured work, so it goes to the first second, not away.
    if (tick.at <= this.origin) return
    const second = Math.max(0, Math.floor((tick.at - TICK_MS / 2 - this.origin) / 1_000))
    this.#fill(this.#seconds, second, tick, open)
    if (this.#intervalMs !== undefined) this.#fill(this.#intervalBuckets, Math.floor(second * 1_000 / this.#intervalMs), tick, open)
    this.#settle(second - LATE_SECONDS)
  }

  /**
   * Summarizes every second and interval still open; call once, when the workers are done.
   * `measuredSeconds` clips the last interval, which a stop may have cut short.
   */
  finish (measuredSeconds: number): void {
    this.#measuredSeconds = measuredSeconds
    this.#settle(Number.POSITIVE_INFINITY)
    this.timeline.sort((a, b) => a.second - b.second)
    this.intervals.sort((a, b) => a.index - b.index)
  }

  /** p99 of the newest second, possibly still incomplete: for the live progress line only. */
  latestP99 (): number | undefined {
    const newest = Math.max(-1, ...this.#seconds.keys())
    const bucket = this.#seconds.get(newest)
    return bucket === undefined ? this.timeline.at(-1)?.p99 : summarize(bucket.latency)?.p99
  }

  #fill (buckets: Map<number, Bucket>, key: number, tick: Tick, open: number): void {
    let bucket = buckets.get(key)
    if (bucket === undefined) {
      bucket = { counters: {}, latency: newHistogram(), open: 0 }
      buckets.set(key, bucket)
    }
    for (const [name, amount] of Object.entries(tick.counters)) bucket.counters[name] = (bucket.counters[name] ?? 0) + amount
    const latency = tick.histograms[this.#profile.latency]
    if (latency !== undefined) mergeInto(bucket.latency, latency)
    bucket.open = Math.max(bucket.open, open)
  }

  #settle (beforeSecond: number): void {
    for (const [second, bucket] of this.#seconds) {
      if (second >= beforeSecond) continue
      this.#seconds.delete(second)
      const summary = summarize(bucket.latency)
      this.timeline.push({
        second,
        throughput: bucket.counters[this.#profile.throughput] ?? 0,
        errors: bucket.counters[this.#profile.failures] ?? 0,
        ...(summary === undefined ? {} : { p50: summary.p50, p99: summary.p99 }),
        open: bucket.open
      })
    }
    if (this.#intervalMs === undefined) return
    const secondsPerInterval = this.#intervalMs / 1_000
    for (const [index, bucket] of this.#intervalBuckets) {
      if ((index + 1) * secondsPerInterval > beforeSecond) continue
      this.#intervalBuckets.delete(index)
      const summary = summarize(bucket.latency)
      const startSecond = index * secondsPerInterval
      const endSecond = Math.max(startSecond + 1, Math.min((index + 1) * secondsPerInterval, this.#measuredSeconds))
      this.intervals.push({
        index,
        startSecond,
        endSecond,
        samples: summary?.count ?? 0,
        throughput: (bucket.counters[this.#profile.throughput] ?? 0) / (endSecond - startSecond),
        errors: bucket.counters[this.#profile.failures] ?? 0,
        ...(summary === undefined ? {} : { p50: summary.p50, p99: summary.p99 })
      })
    }
  }
}
