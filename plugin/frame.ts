/**
 * A server-to-client text frame (RFC 6455 §5.2: FIN set, opcode 1, no mask), header and payload
 * in one buffer: a topic entry is framed once and the same bytes go to every member.
 */
export function textFrame (payload: Buffer): Buffer {
  const length = payload.length
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x81
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(length), 2)
  }
  payload.copy(frame, header)
  return frame
}
