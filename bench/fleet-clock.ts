/* The clock the fleet part's processes stamp and time calls with. */

/** Microseconds on CLOCK_MONOTONIC: comparable between processes of one machine, unlike `performance.now()`. */
export function monotonicMicros (): number {
  return Number(process.hrtime.bigint()) / 1_000
}
