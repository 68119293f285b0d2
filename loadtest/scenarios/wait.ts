import { setTimeout as sleep } from 'node:timers/promises'

/** Polls until `done()` or `timeoutMs`; the end of a run waits for answers this way, boundedly. */
export async function waitUntil (done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!done() && performance.now() < deadline) await sleep(20)
}
