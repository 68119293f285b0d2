/** How long a scrape may take; a slow /metrics must not stall the run's intervals. */
const SCRAPE_TIMEOUT_MS = 5_000

/**
 * The value of an unlabelled sample in Prometheus text exposition format, e.g.
 * `process_resident_memory_bytes 5.2e+07`; undefined when absent.
 */
export function readSample (text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (!rest.startsWith(' ') && !rest.startsWith('{')) continue
    const value = Number(rest.replace(/^\{[^}]*\}/, '').trim().split(/\s+/)[0])
    if (Number.isFinite(value)) return value
  }
  return undefined
}

/** Scrapes `url` for the server's resident memory; undefined (never a throw) when it cannot. */
export async function residentMemory (url: string): Promise<number | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) })
    if (!response.ok) return undefined
    return readSample(await response.text(), 'process_resident_memory_bytes')
  } catch {
    return undefined
  }
}
