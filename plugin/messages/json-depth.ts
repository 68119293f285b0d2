const OPEN_BRACE = 0x7b
const OPEN_BRACKET = 0x5b
const CLOSE_BRACE = 0x7d
const CLOSE_BRACKET = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * Whether a JSON text nests objects/arrays deeper than `maxDepth`, found with one linear scan
 * and no recursion. It runs before `JSON.parse`, so a hostile frame never reaches code that
 * recurses (validators, serializers, structuredClone) and overflows the stack at ~10k levels.
 * Malformed text is left for the parser to reject.
 */
export function exceedsNestingDepth (text: string, maxDepth: number): boolean {
  // Each level needs an opening and a closing character, so short texts cannot be too deep.
  if (text.length <= maxDepth * 2) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return true
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--
    }
  }
  return false
}
