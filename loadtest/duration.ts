const UNIT_MS: Record<string, number> = { us: 0.001, µs: 0.001, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
const DURATION = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)$/

export class DurationError extends Error {
  override name = 'DurationError'
}

/** `30s`, `5m`, `2h`, `250ms`, `1.5s` → milliseconds. A bare number is refused: seconds or milliseconds would be a guess. */
export function parseDuration (text: string, what = 'duration'): number {
  const match = DURATION.exec(text.trim())
  if (match === null) throw new DurationError(`${what} must be a number with a unit (us, ms, s, m, h), like 30s, 5m or 250ms; got "${text}"`)
  return Number(match[1]) * (UNIT_MS[match[2] as string] as number)
}

/** `500ms-3s` → [500, 3000]; a single duration is a range of one value. */
export function parseDurationRange (text: string, what = 'range'): [number, number] {
  const parts = text.split('-')
  if (parts.length > 2) throw new DurationError(`${what} must be a duration or min-max, like 500ms-3s; got "${text}"`)
  const min = parseDuration(parts[0] as string, what)
  const max = parts.length === 2 ? parseDuration(parts[1] as string, what) : min
  if (max < min) throw new DurationError(`${what}: the maximum (${parts[1]}) is below the minimum (${parts[0]})`)
  return [min, max]
}

/** Milliseconds in the largest unit that keeps the number readable: `950ms`, `12.5s`, `5m 30s`, `2h`. */
export function formatDuration (ms: number): string {
  if (ms === 0) return '0s'
  if (ms < 1_000) return `${Math.round(ms)}ms`
  if (ms < 60_000) return `${Number((ms / 1_000).toFixed(1))}s`
  const totalSeconds = Math.round(ms / 1_000)
  const hours = Math.floor(totalSeconds / 3_600)
  const minutes = Math.floor((totalSeconds % 3_600) / 60)
  const seconds = totalSeconds % 60
  return [hours > 0 ? `${hours}h` : '', minutes > 0 ? `${minutes}m` : '', seconds > 0 ? `${seconds}s` : ''].filter(Boolean).join(' ')
}
