/**
 * Topic offsets are `"<ms>-<seq>"` strings (the form of a Redis stream id), ordered as the
 * integer pair (ms, seq).
 */
export const ZERO_OFFSET = '0-0'

/** As a JSON Schema `pattern`; 15 digits keep both halves exact as JavaScript numbers. */
export const OFFSET_PATTERN = '^[0-9]{1,15}-[0-9]{1,15}$'
/** Negative when a < b, zero when equal, positive when a > b. Both must match `OFFSET_PATTERN`. */
export function compareOffsets (a: string, b: string): number {
  const dashA = a.indexOf('-')
  const dashB = b.indexOf('-')
  const msDiff = Number(a.slice(0, dashA)) - Number(b.slice(0, dashB))
  return msDiff !== 0 ? msDiff : Number(a.slice(dashA + 1)) - Number(b.slice(dashB + 1))
}

/**
 * Whether `offset` comes after each offset asked about. The subscribers of a topic are nearly
 * all at the same offset, so once one is found older, asking about it again is one string
 * comparison instead of four numbers parsed.
 */
export function comesAfter (offset: string): (other: string) => boolean {
  let older: string | undefined
  return (other) => {
    if (other === older) return true
    if (compareOffsets(offset, other) <= 0) return false
    older = other
    return true
  }
}
