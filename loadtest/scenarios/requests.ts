import type { Frame } from '../connection.js'
import type { Recorder } from '../recorder.js'

/**
 * The requests one connection has in flight, by id, with their send times. Answers are matched
 * by id because the server handles pipelined messages concurrently and may answer out of order.
 */
export class InFlight {
  readonly #sentAt = new Map<number, number>()
  #nextId = 1

  get size (): number {
    return this.#sentAt.size
  }

  add (sentAt: number): number {
    const id = this.#nextId++
    this.#sentAt.set(id, sentAt)
    return id
  }

  /** The send time of the request this frame answers, removed; undefined when it answers none. */
  settle (frame: Frame): number | undefined {
    if (typeof frame.id !== 'number') return undefined
    const sentAt = this.#sentAt.get(frame.id)
    this.#sentAt.delete(frame.id)
    return sentAt
  }

  /** Forgets requests older than `timeoutMs`, counting them as errors. */
  expire (now: number, timeoutMs: number, recorder: Recorder): number {
    let expired = 0
    for (const [id, sentAt] of this.#sentAt) {
      if (now - sentAt < timeoutMs) continue
      this.#sentAt.delete(id)
      countError(recorder, 'TIMEOUT', sentAt)
      recorder.count('timeouts', 1, sentAt)
      expired++
    }
    return expired
  }

  /** The connection is gone: whatever was in flight will never be answered. */
  abandon (recorder: Recorder): void {
    for (const sentAt of this.#sentAt.values()) countError(recorder, 'DISCONNECTED', sentAt)
    this.#sentAt.clear()
  }
}

export function countError (recorder: Recorder, code: string, startedAt: number): void {
  recorder.count('errors', 1, startedAt)
  recorder.count(`errors:${code}`, 1, startedAt)
}

export function errorCode (frame: Frame): string {
  const code = (frame.error as { code?: unknown } | undefined)?.code
  return typeof code === 'string' ? code : 'UNKNOWN'
}
