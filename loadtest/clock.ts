import { performance } from 'node:perf_hooks'

/**
 * Epoch milliseconds with sub-millisecond resolution that every worker thread of the process
 * agrees on: each thread has its own `timeOrigin`, but origin + elapsed is the same wall clock.
 * Send times travel between threads (fan-out markers), so `Date.now()` (1 ms steps) and bare
 * `performance.now()` (per-thread origin) would both be wrong here.
 */
export function now (): number {
  return performance.timeOrigin + performance.now()
}
