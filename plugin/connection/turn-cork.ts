import type { Writable } from 'node:stream'

/*
 * Frames written to one socket in the same turn leave in one write. The first frame corks the
 * socket and every socket corked in the turn is uncorked together, on one `nextTick` for all
 * of them: before any I/O callback runs again, so a lone frame waits for nothing but the code
 * already running. When publishes to a busy topic arrive faster than the loop turns (several in
 * one read, or a broker's batch), a subscriber gets one system call for all of them where it
 * got one per publish. What is corked counts in `bufferedAmount`, so slow-consumer limits see it.
 */

let corked: Writable[] = []

/** Corks `stream` until the end of this turn, unless something else (a read) already holds a cork. */
export function corkForTurn (stream: Writable): void {
  if (stream.writableCorked > 0) return
  stream.cork()
  if (corked.push(stream) === 1) process.nextTick(uncorkTurn)
}

function uncorkTurn (): void {
  // Swapped first: a write made while uncorking (a 'drain' listener's) corks for the next tick.
  const streams = corked
  corked = []
  for (const stream of streams) stream.uncork()
}
