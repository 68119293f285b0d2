import { randomBytes } from 'node:crypto'
import type { OnceClaim } from './broker.js'

interface Held {
  /** The claim's token while it runs; undefined once it has an answer. */
  token: string | undefined
  answer: string | undefined
  expiresAt: number
}

/** Most keys held at once: past it, the soonest to expire goes first, so clients cannot grow it without bound. */
const MAX_HELD = 100_000

/** Requests that run once, for one node: claims and answers in this process, expiring by the clock. */
export class MemoryOnce {
  readonly #held = new Map<string, Held>()

  claim (key: string, leaseMs: number): OnceClaim {
    const now = Date.now()
    const held = this.#held.get(key)
    if (held !== undefined && held.expiresAt > now) {
      return held.answer !== undefined ? { state: 'done', answer: held.answer } : { state: 'running' }
    }
    const token = randomBytes(9).toString('base64url')
    this.#held.delete(key)
    this.#held.set(key, { token, answer: undefined, expiresAt: now + leaseMs })
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
    this.#held.delete(key)
    this.#held.set(key, { token: undefined, answer, expiresAt: Date.now() + ttlMs })
  }

  release (key: string, token: string): void {
    if (this.#held.get(key)?.token === token) this.#held.delete(key)
  }

  clear (): void {
    this.#held.clear()
  }

  /** Expired entries go when met in insertion order; past the bound, the oldest go whatever their expiry. */
  #bound (now: number): void {
    for (const [key, held] of this.#held) {
      if (held.expiresAt > now && this.#held.size <= MAX_HELD) break
      this.#held.delete(key)
    }
  }
}
