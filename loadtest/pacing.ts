import { setTimeout as sleep } from 'node:timers/promises'

/** Waits `ms`, or less when `signal` aborts; never throws. */
export async function pause (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return
  await sleep(ms, undefined, { signal }).catch(() => {})
}

export function randomBetween ([min, max]: readonly [number, number]): number {
  return min + Math.random() * (max - min)
}

/** This worker's part of `total` when `count` workers split it as evenly as possible. */
export function shareOf (total: number, index: number, count: number): number {
  return Math.floor(total / count) + (index < total % count ? 1 : 0)
}

/**
 * Calls `send(n)` so that `perSecond` operations happen on average, in small batches from a
 * 10 ms timer: timers cannot fire once per message at thousands per second, and catching up
 * on what is due (rather than one per tick) keeps the rate when the event loop is late.
 */
export function fixedRate (perSecond: number, send: (due: number) => void): { stop: () => void } {
  const startedAt = performance.now()
  let sent = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - startedAt) / 1_000) * perSecond) - sent
    if (due <= 0) return
    sent += due
    send(due)
  }, 10)
  return { stop: () => clearInterval(timer) }
}
