/**
 * Taken slots the queue lets pile up at its front (while they are also at least half of the
 * array) before it copies the rest to a new array: few, since a broker has thousands of queues.
 */
const COMPACT_AFTER = 16

/**
 * A first-in first-out queue whose `shift` is O(1) amortised at any length. `Array#shift` is
 * O(1) only while V8 can move the array's start, and copies every item once the array is past
 * about 16,000 of them (a history of that many entries took 3 µs per publish, 100,000 took 15).
 */
export class Fifo<T> {
  #items: Array<T | undefined> = []
  #head = 0

  get length (): number {
    return this.#items.length - this.#head
  }

  push (item: T): void {
    this.#items.push(item)
  }

  /** The oldest item, removed; undefined when empty. */
  shift (): T | undefined {
    if (this.#head === this.#items.length) return undefined
    const item = this.#items[this.#head]
    // Released now: the slot would otherwise keep the item alive until the next compaction.
    this.#items[this.#head++] = undefined
    if (this.#head === this.#items.length) this.clear()
    else if (this.#head >= COMPACT_AFTER && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head)
      this.#head = 0
    }
    return item
  }

  /** The item `index` places after the oldest. */
  at (index: number): T | undefined {
    return index < 0 ? undefined : this.#items[this.#head + index]
  }

  /** Keeps, in order, the items `keep` accepts; `keep` sees each item once, oldest first. O(n). */
  retain (keep: (item: T) => boolean): void {
    const kept: T[] = []
    for (let i = this.#head; i < this.#items.length; i++) {
      const item = this.#items[i] as T
      if (keep(item)) kept.push(item)
    }
    this.#items = kept
    this.#head = 0
  }

  clear (): void {
    this.#items = []
    this.#head = 0
  }
}
