import { DEFAULTS } from '../defaults.js'
import type { ClientBudget } from './client-budgets.js'

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

/**
 * The message budgets of one connection and the rule that turns refusals into abuse. A message
 * spends from the connection's budget (or its type's own, when the type declares one), then
 * from the budget its client's connections share; refusals beyond max(`abuseMinRefusals`, twice
 * the per-second budget) within `abuseWindowMs` are sustained abuse, which closes with 1008.
 */
export class MessageBudget {
  readonly #ratePerSecond: number
  readonly #bucket: TokenBucket | undefined
  readonly #client: ClientBudget | undefined
  #typeBuckets: Map<string, TokenBucket> | undefined
  #refusals: RefusalCounter | undefined
  /** Which budget refused the last message `take` refused. */
  refusedBy: 'message' | 'client' = 'message'

  constructor (ratePerSecond: number, client: ClientBudget | undefined) {
    this.#ratePerSecond = ratePerSecond
    this.#bucket = ratePerSecond > 0 ? new TokenBucket(ratePerSecond) : undefined
    this.#client = client
  }

  /** Spends one message of `type`: 0 when it may proceed, else the milliseconds until it may. */
  take (type: string, typeRate: number | undefined): number {
    const own = typeRate === undefined ? this.#takeOwn() : this.#takeType(type, typeRate)
    if (own > 0) {
      this.refusedBy = 'message'
      return own
    }
    const shared = this.#client === undefined ? 0 : this.#client.bucket.take()
    if (shared > 0) this.refusedBy = 'client'
    return shared
  }

  /** Records a refused message; true when refusals have become sustained abuse. */
  recordRefusal (): boolean {
    this.#refusals ??= new RefusalCounter(DEFAULTS.abuseWindowMs, Math.max(DEFAULTS.abuseMinRefusals, 2 * this.#ratePerSecond))
    return this.#refusals.record()
  }

  #takeOwn (): number {
    return this.#bucket === undefined ? 0 : this.#bucket.take()
  }

  #takeType (type: string, typeRate: number): number {
    if (typeRate === 0) return 0
    this.#typeBuckets ??= new Map()
    let bucket = this.#typeBuckets.get(type)
    if (bucket === undefined) {
      bucket = new TokenBucket(typeRate)
      this.#typeBuckets.set(type, bucket)
    }
    return bucket.take()
  }
}
