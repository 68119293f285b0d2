import type { Aggregate } from './aggregate.js'
import { formatDuration } from './duration.js'
import type { ScenarioProfile } from './profile.js'
import { formatCount, formatMs, formatRate } from './report/format.js'

/**
 * A live status line on stderr, rewritten in place each second. Only on a terminal: in CI logs
 * or a pipe, carriage returns would pile up into noise, and stdout stays the report's alone.
 */
export class ProgressLine {
  readonly #stream: NodeJS.WriteStream
  readonly #enabled: boolean
  readonly #profile: ScenarioProfile
  readonly #scenario: string
  #lastThroughput = 0
  #shown = false

  constructor (stream: NodeJS.WriteStream, enabled: boolean, profile: ScenarioProfile, scenario: string) {
    this.#stream = stream
    this.#enabled = enabled && stream.isTTY
    this.#profile = profile
    this.#scenario = scenario
  }

  update (state: { elapsedMs: number, totalMs: number, aggregate: Aggregate, phase: string }): void {
    if (!this.#enabled) return
    const { aggregate } = state
    const throughput = aggregate.counters[this.#profile.throughput] ?? 0
    const perSecond = throughput - this.#lastThroughput
    this.#lastThroughput = throughput
    const line = [
      `[${this.#scenario}] ${formatDuration(state.elapsedMs)} / ${formatDuration(state.totalMs)} ${state.phase}`,
      `open ${formatCount(aggregate.open)}`,
      `${formatRate(perSecond)} ${this.#profile.throughputLabel}`,
      `p99 ${formatMs(aggregate.latestP99())}`,
      `errors ${formatCount(aggregate.counters[this.#profile.failures] ?? 0)}`
    ].join('  ')
    // A terminal that reports no width (some CI pseudo-terminals) gets a common one.
    const width = this.#stream.columns > 0 ? this.#stream.columns : 120
    this.#stream.write(`\r\x1b[K${line.slice(0, width - 1)}`)
    this.#shown = true
  }

  clear (): void {
    if (this.#shown) this.#stream.write('\r\x1b[K')
    this.#shown = false
  }
}
