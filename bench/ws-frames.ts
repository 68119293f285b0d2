/*
 * WebSocket as a raw client speaks it (RFC 6455): the opening handshake, client frames, and
 * server frames read out of a byte stream. Pure functions over strings and buffers, no sockets.
 *
 * The load generators and the hostile-peer tests both write their own bytes: the generators
 * because a full client costs more than the servers they measure, the tests because a real
 * client refuses to send what they send. This is the one codec both use. It lives with the
 * benchmarks because their hot loops set its constraints (header reads that allocate nothing)
 * and because the benchmarks must not depend on the test tree; tests import from anywhere.
 */
import { createHash, randomBytes } from 'node:crypto'

/** Frame opcodes, RFC 6455 §5.2. */
export const OP_CONTINUATION = 0x0
export const OP_TEXT = 0x1
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa

/** Appended to the client's key before hashing it into Sec-WebSocket-Accept (RFC 6455 §1.3). */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** A fresh Sec-WebSocket-Key: 16 random bytes, base64. */
export function handshakeKey (): string {
  return randomBytes(16).toString('base64')
}

/** The Sec-WebSocket-Accept a server must answer `key` with. */
export function acceptFor (key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64')
}

/** What goes into an upgrade request beyond the headers every one carries. */
export interface UpgradeRequest {
  /** Request target, query included. */
  path: string
  /** The Host header: `127.0.0.1:<port>`. */
  host: string
  key: string
  /** Sec-WebSocket-Protocol, when the server expects one. */
  protocol?: string
  /** Further header lines, each ending in CRLF. */
  headers?: string
}

/** An HTTP/1.1 upgrade request, head only. */
export function upgradeRequest ({ path, host, key, protocol, headers = '' }: UpgradeRequest): string {
  return `GET ${path} HTTP/1.1\r\n` +
    `Host: ${host}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    'Sec-WebSocket-Version: 13\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    (protocol === undefined ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    headers +
    '\r\n'
}

/** A response head split from what follows it. */
export interface ResponseHead {
  /** The head as text, blank line included. */
  head: string
  /** Its status code; 0 when the status line is not HTTP/1.1. */
  status: number
  /** Bytes the head takes in the buffer; frames start there. */
  bytes: number
}

/** The HTTP response head at the start of `buffer`, or undefined while it is incomplete. */
export function responseHead (buffer: Buffer): ResponseHead | undefined {
  const end = buffer.indexOf('\r\n\r\n')
  if (end < 0) return undefined
  const head = buffer.subarray(0, end + 4).toString('latin1')
  return { head, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), bytes: end + 4 }
}

/** How a client frame is written; the defaults are what a conforming client sends. */
export interface ClientFrameOptions {
  /** Last fragment of its message. */
  fin?: boolean
  /** Clients must mask (RFC 6455 §5.3): `false` writes a protocol violation. */
  mask?: boolean
}

/** One client frame, in one allocation, masked with a fresh key unless told otherwise. */
export function clientFrame (opcode: number, payload: Buffer | string, { fin = true, mask = true }: ClientFrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const lengthBytes = data.length < 126 ? 0 : data.length <= 0xffff ? 2 : 8
  const header = 2 + lengthBytes + (mask ? 4 : 0)
  const frame = Buffer.allocUnsafe(header + data.length)
  frame[0] = (fin ? 0x80 : 0) | opcode
  const maskBit = mask ? 0x80 : 0
  if (lengthBytes === 0) {
    frame[1] = maskBit | data.length
  } else if (lengthBytes === 2) {
    frame[1] = maskBit | 126
    frame.writeUInt16BE(data.length, 2)
  } else {
    frame[1] = maskBit | 127
    frame.writeBigUInt64BE(BigInt(data.length), 2)
  }
  if (!mask) {
    data.copy(frame, header)
    return frame
  }
  const key = randomBytes(4)
  key.copy(frame, header - 4)
  for (let i = 0; i < data.length; i++) frame[header + i] = (data[i] as number) ^ (key[i & 3] as number)
  return frame
}

/**
 * Bytes the whole frame at `offset` takes, or 0 while `buffer` does not hold all of it. The
 * load generators count every server frame with it, so it reads the header in place.
 */
export function frameBytes (buffer: Buffer, offset: number): number {
  const available = buffer.length - offset
  if (available < 2) return 0
  const second = buffer[offset + 1] as number
  let length = second & 0x7f
  let header = 2
  if (length === 126) {
    if (available < 4) return 0
    length = buffer.readUInt16BE(offset + 2)
    header = 4
  } else if (length === 127) {
    if (available < 10) return 0
    length = Number(buffer.readBigUInt64BE(offset + 2))
    header = 10
  }
  if ((second & 0x80) !== 0) header += 4
  return available < header + length ? 0 : header + length
}

/** A frame as read off the wire, its payload unmasked. */
export interface Frame {
  fin: boolean
  opcode: number
  /** Whether the sender masked it: servers never may (RFC 6455 §5.1). */
  masked: boolean
  /** A copy, so it outlives the buffer it was read from. */
  payload: Buffer
  /** Bytes the frame took, header included. */
  bytes: number
}

/** The frame at `offset`, or undefined while `buffer` does not hold all of it. */
export function decodeFrame (buffer: Buffer, offset = 0): Frame | undefined {
  const bytes = frameBytes(buffer, offset)
  if (bytes === 0) return undefined
  const first = buffer[offset] as number
  const second = buffer[offset + 1] as number
  const masked = (second & 0x80) !== 0
  const length = second & 0x7f
  const start = offset + (length === 126 ? 4 : length === 127 ? 10 : 2) + (masked ? 4 : 0)
  const payload = Buffer.from(buffer.subarray(start, offset + bytes))
  if (masked) {
    const key = buffer.subarray(start - 4, start)
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (key[i & 3] as number)
  }
  return { fin: (first & 0x80) !== 0, opcode: first & 0x0f, masked, payload, bytes }
}
