import type { RecordableHistogram } from 'node:perf_hooks'
import { now } from './clock.js'
import { newHistogram, recordMs } from './histogram.js'

/** What a worker posts each second: what happened since the previous tick. */
export interface Tick {
  kind: 'tick'
  /** Epoch ms on the shared clock. */
  at: number
  counters: Record<string, number>
  /** A fresh histogram per tick, never touched again by the worker once posted. */
  histograms: Record<string, RecordableHistogram>
  /** Connections open right now in this worker (a level, not a delta). */
  open: number
}

/**
 * Counts and latencies of one worker between ticks. Each observation carries the moment its
 * operation started: one started during the warmup is left out even if it ends after it, so a
 * request is counted with its reply, or not at all.
 */
export class Recorder {
  /** Moved forward when the warmup ends. */
  measureFrom: number
  #counters: Record<string, number> = {}
  #histograms: Record<string, RecordableHistogram> = {}
  #open = 0

  constructor (measureFrom: number) {
    this.measureFrom = measureFrom
  }

  count (name: string, amount = 1, startedAt = now()): void {
    if (startedAt < this.measureFrom) return
    this.#counters[name] = (this.#counters[name] ?? 0) + amount
  }

  observe (name: string, ms: number, startedAt: number): void {
    if (startedAt < this.measureFrom) return
    recordMs(this.#histograms[name] ??= newHistogram(), ms)
  }

  opened (): void {
    this.#open++
  }

  closed (): void {
    this.#open--
  }

  tick (): Tick {
    const tick: Tick = { kind: 'tick', at: now(), counters: this.#counters, histograms: this.#histograms, open: this.#open }
    this.#counters = {}
    this.#histograms = {}
    return tick
  }
}
