/** How long to wait between reconnection attempts. */
export interface BackoffOptions {
  /** The ceiling of the first delay (default 250 ms). */
  minMs?: number
  /** The largest ceiling (default 30 s). */
  maxMs?: number
  /** How much the ceiling grows per attempt (default 2). */
  factor?: number
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { minMs: 250, maxMs: 30_000, factor: 2 }

/**
 * Full-jitter exponential backoff: a uniformly random delay below a ceiling that grows with
 * each attempt (0 for the first retry), so that clients dropped together by one deploy come
 * back spread out rather than in a wave.
 */
export function backoffDelay (attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const { minMs, maxMs, factor } = { ...DEFAULT_BACKOFF, ...options }
  const ceiling = Math.min(maxMs, minMs * factor ** Math.max(0, attempt))
  return Math.floor(random() * ceiling)
}
