/*
 * The pieces of a WebSocket client that the load generators share: raw TCP, a hand-made
 * handshake, pre-masked frames, and a frame counter that never parses payloads.
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

/** A client frame: FIN + text opcode, masked (servers reject unmasked client frames). */
export function maskedTextFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  if (payload.length > 0xffff) throw new Error('bench payloads stay under 64 KiB')
  const header = payload.length < 126 ? 2 : 4
  const mask = randomBytes(4)
  const frame = Buffer.alloc(header + 4 + payload.length)
  frame[0] = 0x81
  if (header === 2) {
    frame[1] = 0x80 | payload.length
  } else {
    frame[1] = 0x80 | 126
    frame.writeUInt16BE(payload.length, 2)
  }
  mask.copy(frame, header)
  for (let i = 0; i < payload.length; i++) frame[header + 4 + i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return frame
}

/** Counts complete server frames in a byte stream, keeping partial ones for the next chunk. */
export class FrameCounter {
  #pending: Buffer = Buffer.alloc(0)

  count (chunk: Buffer): number {
    let buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    let frames = 0
    let offset = 0
    for (;;) {
      if (buffer.length - offset < 2) break
      let length = (buffer[offset + 1] as number) & 0x7f
      let header = 2
      if (length === 126) {
        if (buffer.length - offset < 4) break
        length = buffer.readUInt16BE(offset + 2)
        header = 4
      } else if (length === 127) {
        if (buffer.length - offset < 10) break
        length = Number(buffer.readBigUInt64BE(offset + 2))
        header = 10
      }
      if (buffer.length - offset < header + length) break
      offset += header + length
      frames++
    }
    buffer = buffer.subarray(offset)
    this.#pending = Buffer.from(buffer)
    return frames
  }
}

/** Opens a WebSocket over a raw TCP socket; `headers` are extra request header lines. */
export async function open (port: number, path: string, headers = ''): Promise<{ socket: Socket, rest: Buffer }> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${headers}\r\n`)
  return await new Promise((resolve, reject) => {
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onData)
      if (!head.subarray(0, 12).toString().includes('101')) reject(new Error(head.subarray(0, end).toString()))
      else resolve({ socket, rest: head.subarray(end + 4) })
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}
