/*
 * The pieces of a WebSocket client that the load generators share: raw TCP, a hand-made
 * handshake, a frame counter that never parses payloads and a reader for those that must.
 * Frames come from ws-frames.ts.
 */
import { connect, type Socket } from 'node:net'
import { decodeFrame, frameBytes, handshakeKey, responseHead, upgradeRequest, type Frame } from './ws-frames.js'

/** Counts complete server frames in a byte stream, keeping partial ones for the next chunk. */
export class FrameCounter {
  #pending: Buffer = Buffer.alloc(0)

  count (chunk: Buffer): number {
    const buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    let frames = 0
    let offset = 0
    for (;;) {
      const size = frameBytes(buffer, offset)
      if (size === 0) break
      offset += size
      frames++
    }
    this.#pending = Buffer.from(buffer.subarray(offset))
    return frames
  }
}

/** Splits a byte stream into whole server frames, for clients that must tell replies from pushes. */
export class FrameReader {
  #pending: Buffer = Buffer.alloc(0)

  read (chunk: Buffer): Frame[] {
    const buffer = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk])
    const frames: Frame[] = []
    let offset = 0
    for (;;) {
      const frame = decodeFrame(buffer, offset)
      if (frame === undefined) break
      offset += frame.bytes
      frames.push(frame)
    }
    this.#pending = Buffer.from(buffer.subarray(offset))
    return frames
  }
}

/** Opens a WebSocket over a raw TCP socket; `headers` are extra request header lines. */
export async function open (port: number, path: string, headers = ''): Promise<{ socket: Socket, rest: Buffer }> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  socket.write(upgradeRequest({ path, host: `127.0.0.1:${port}`, key: handshakeKey(), headers }))
  return await new Promise((resolve, reject) => {
    let received = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk])
      const response = responseHead(received)
      if (response === undefined) return
      socket.off('data', onData)
      if (response.status !== 101) reject(new Error(response.head.trimEnd()))
      else resolve({ socket, rest: received.subarray(response.bytes) })
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
}
