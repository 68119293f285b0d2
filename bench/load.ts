/*
 * A load generator that costs little on its own core: raw TCP sockets, one handshake each,
 * pre-masked frames written in batches, and replies counted from frame headers without parsing
 * them. Run as a child of bench/echo.ts; it answers `count` messages with replies received.
 */
import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'

export interface LoadPlan {
  port: number
  path: string
  connections: number
  /** Pipelined mode: messages each connection keeps in flight. */
  inflight?: number
  /** Fixed-rate mode: messages per second over all connections. */
  ratePerSecond?: number
  payload: string
}

/** A client frame: FIN + text opcode, masked (servers reject unmasked client frames). */
function maskedTextFrame (text: string): Buffer {
  const payload = Buffer.from(text)
  if (payload.length >= 126) throw new Error('bench payloads stay under 126 bytes')
  const mask = randomBytes(4)
  const frame = Buffer.alloc(2 + 4 + payload.length)
  frame[0] = 0x81
  frame[1] = 0x80 | payload.length
  mask.copy(frame, 2)
  for (let i = 0; i < payload.length; i++) frame[6 + i] = (payload[i] as number) ^ (mask[i % 4] as number)
  return frame
}

/** Counts complete server frames in a byte stream, keeping partial ones for the next chunk. */
class FrameCounter {
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

async function open (port: number, path: string): Promise<{ socket: Socket, rest: Buffer }> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`)
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

export async function runLoad (plan: LoadPlan): Promise<() => number> {
  const frame = maskedTextFrame(plan.payload)
  const batch = Buffer.concat(Array.from({ length: Math.max(plan.inflight ?? 1, 64) }, () => frame))
  let replies = 0
  const sockets: Socket[] = []
  for (let i = 0; i < plan.connections; i++) {
    const { socket, rest } = await open(plan.port, plan.path)
    const counter = new FrameCounter()
    // A realtime.v1 server's first frame is $welcome: counted once, before any measurement window.
    const onFrames = (chunk: Buffer): void => {
      const n = counter.count(chunk)
      replies += n
      if (plan.inflight !== undefined && n > 0) {
        // Keep `inflight` messages outstanding: send as many as just came back, in one write.
        let toSend = n
        while (toSend > 0) {
          const now = Math.min(toSend, batch.length / frame.length)
          socket.write(batch.subarray(0, now * frame.length))
          toSend -= now
        }
      }
    }
    socket.on('data', onFrames)
    if (rest.length > 0) onFrames(rest)
    sockets.push(socket)
  }
  if (plan.inflight !== undefined) {
    for (const socket of sockets) socket.write(batch.subarray(0, plan.inflight * frame.length))
  } else if (plan.ratePerSecond !== undefined) {
    const tickMs = 5
    let carry = 0
    let next = 0
    const timer = setInterval(() => {
      carry += plan.ratePerSecond! * tickMs / 1000
      while (carry >= 1) {
        sockets[next]!.write(frame)
        next = (next + 1) % sockets.length
        carry--
      }
    }, tickMs)
    process.once('disconnect', () => clearInterval(timer))
  }
  return () => replies
}

if (process.send !== undefined && process.argv[2] !== undefined) {
  const plan = JSON.parse(process.argv[2]) as LoadPlan
  const count = await runLoad(plan)
  process.on('message', (message) => {
    if (message === 'count') process.send?.(count())
  })
  process.on('disconnect', () => process.exit(0))
  process.send('ready')
}
