/** Orders two realtime.v1 offsets (`"<ms>-<seq>"`) as the integer pairs they are; strings would put "10-0" before "9-0". */
export function compareOffsets (a: string, b: string): number {
  const [aMs = 0, aSeq = 0] = a.split('-').map(Number)
  const [bMs = 0, bSeq = 0] = b.split('-').map(Number)
  return aMs !== bMs ? aMs - bMs : aSeq - bSeq
}
