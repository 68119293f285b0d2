/*
 * Server-to-client text frames (RFC 6455 §5.2: FIN set, opcode 1, no mask), header and payload
 * in one buffer. Framing here rather than in ws makes one chunk per frame instead of two, and
 * lets a topic frame an entry once for every member.
 */

function headerLength (payloadLength: number): number {
  return payloadLength < 126 ? 2 : payloadLength < 65_536 ? 4 : 10
}

function writeHeader (frame: Buffer, payloadLength: number): void {
  frame[0] = 0x81
  if (payloadLength < 126) {
    frame[1] = payloadLength
  } else if (payloadLength < 65_536) {
    frame[1] = 126
    frame.writeUInt16BE(payloadLength, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(payloadLength), 2)
  }
}

export function textFrame (payload: Buffer): Buffer {
  const header = headerLength(payload.length)
  const frame = Buffer.allocUnsafe(header + payload.length)
  writeHeader(frame, payload.length)
  payload.copy(frame, header)
  return frame
}

/** The frame of a text, encoded straight into it: one copy. `length` is its UTF-8 byte length. */
export function textFrameOf (text: string, length: number = Buffer.byteLength(text)): Buffer {
  const header = headerLength(length)
  const frame = Buffer.allocUnsafe(header + length)
  writeHeader(frame, length)
  frame.write(text, header, 'utf8')
  return frame
}

/**
 * One text encoded once and framed at most once, for every socket it goes to; sockets that
 * ws must frame (permessage-deflate) take the payload and never cause the framing.
 */
export class SharedText {
  readonly payload: Buffer
  #frame: Buffer | undefined

  constructor (text: string) {
    this.payload = Buffer.from(text)
  }

  get frame (): Buffer {
    this.#frame ??= textFrame(this.payload)
    return this.#frame
  }
}
