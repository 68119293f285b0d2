import { randomBytes } from 'node:crypto'
import type { OnceClaim } from './broker.js'
import { Fifo } from './fifo.js'

interface Held {
  /** The claim's token while it runs; undefined once it has an answer. */
  token: string | undefined
  answer: string | undefined
  expiresAt: number
}

/** Most keys held at once: past it, the soonest to expire goes first, so clients cannot grow it without bound. */
const MAX_HELD = 100_000

/**
 * Requests that run once, for one node: claims and answers in this process, expiring by the
 * clock. Entries are dropped in the order they were made (a queue beside the map: walking the
 * map from its start past the holes its deletions leave made each claim slower than the last).
 */
export class MemoryOnce {
  readonly #held = new Map<string, Held>()
  /** Every entry made, oldest first; a record whose key was made again since is skipped. */
  readonly #order = new Fifo<{ key: string, held: Held }>()

  claim (key: string, leaseMs: number): OnceClaim {
    const now = Date.now()
    const held = this.#held.get(key)
    if (held !== undefined && held.expiresAt > now) {
      return held.answer !== undefined ? { state: 'done', answer: held.answer } : { state: 'running' }
    }
    const token = randomBytes(9).toString('base64url')
    this.#hold(key, { token, answer: undefined, expiresAt: now + leaseMs })
    this.#bound(now)
    return { state: 'claimed', token }
  }

  renew (key: string, token: string, leaseMs: number): boolean {
    const held = this.#held.get(key)
    if (held?.token !== token || held.expiresAt <= Date.now()) return false
    held.expiresAt = Date.now() + leaseMs
    return true
  }

  finish (key: string, token: string, answer: string, ttlMs: number): void {
    const held = this.#held.get(key)
    if (held?.token !== token) return
    this.#hold(key, { token: undefined, answer, expiresAt: Date.now() + ttlMs })
  }

  release (key: string, token: string): void {
    if (this.#held.get(key)?.token === token) this.#held.delete(key)
  }

  clear (): void {
    this.#held.clear()
    this.#order.clear()
  }

  #hold (key: string, held: Held): void {
    this.#held.set(key, held)
    this.#order.push({ key, held })
  }

  /** The oldest entries go while they have expired, and past the bound whatever their expiry. */
  #bound (now: number): void {
    for (let oldest = this.#order.at(0); oldest !== undefined; oldest = this.#order.at(0)) {
      const current = this.#held.get(oldest.key) === oldest.held
      if (current && oldest.held.expiresAt > now && this.#held.size <= MAX_HELD) break
      this.#order.shift()
      if (current) this.#held.delete(oldest.key)
    }
  }
}
