/**
 * A token bucket: `ratePerSecond` tokens a second, holding one second of burst (at least one
 * token, so rates below 1/s still let a message through now and then). Time comes from a
 * monotonic clock so wall-clock jumps neither grant nor withhold.
 */
export class TokenBucket {
  readonly #ratePerMs: number
  readonly #capacity: number
  #tokens: number
  #updatedAt: number

  constructor (ratePerSecond: number, now: number = performance.now()) {
    this.#ratePerMs = ratePerSecond / 1000
    this.#capacity = Math.max(1, ratePerSecond)
    this.#tokens = this.#capacity
    this.#updatedAt = now
  }

  /** Takes one token; returns 0 when taken, else the milliseconds until one is available. */
  take (now: number = performance.now()): number {
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#updatedAt) * this.#ratePerMs)
    this.#updatedAt = now
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return 0
    }
    return Math.ceil((1 - this.#tokens) / this.#ratePerMs)
  }
}

/**
 * Counts refusals in fixed windows; `record()` says when a window holds more than `threshold`,
 * which is sustained abuse rather than a burst.
 */
export class RefusalCounter {
  readonly #windowMs: number
  readonly #threshold: number
  #windowStart = 0
  #count = 0

  constructor (windowMs: number, threshold: number) {
    this.#windowMs = windowMs
    this.#threshold = threshold
  }

  record (now: number = performance.now()): boolean {
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now
      this.#count = 0
    }
    return ++this.#count > this.#threshold
  }
}
