import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { RealtimeOptions } from '../../plugin/index.js'
import { TestClient } from './client.js'
import { startServer, type TestServer } from './server.js'

// Misbehaving peers speak raw TCP, since a real WebSocket client refuses to send what they send.

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
export const OP_TEXT = 0x1
export const OP_CLOSE = 0x8

export interface ServerFrame {
  fin: boolean
  opcode: number
  payload: Buffer
}

type Take<T> = (buffer: Buffer) => { value: T, used: number } | undefined

/** A TCP peer that writes whatever bytes a test wants and parses what the server answers. */
export class RawPeer {
  readonly socket: Socket
  /** Resolves when the TCP connection is gone, whoever ended it. */
  readonly ended: Promise<void>
  #buffer: Buffer = Buffer.alloc(0)
  #wake: (() => void) | undefined
  #isEnded = false

  private constructor (socket: Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
      this.#wake?.()
    })
    // A hostile peer expects resets and broken pipes; what it reads is what the tests assert.
    socket.on('error', () => {})
    this.ended = new Promise((resolve) => {
      socket.once('close', () => {
        this.#isEnded = true
        this.#wake?.()
        resolve()
      })
    })
  }

  static async open (server: Pick<RawServer, 'port' | 'sockets'>): Promise<RawPeer> {
    const socket = connect({ host: '127.0.0.1', port: server.port })
    server.sockets.add(socket)
    const peer = new RawPeer(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    socket.setNoDelay(true)
    return peer
  }

  write (bytes: Buffer | string): void {
    this.socket.write(bytes)
  }

  /** Sends an upgrade request; `slow` writes it one byte per event-loop turn. */
  async handshake (port: number, { slow = false }: { slow?: boolean } = {}): Promise<{ status: number, head: string, key: string }> {
    const key = randomBytes(16).toString('base64')
    const request = Buffer.from(handshakeRequest(port, key))
    if (slow) {
      for (let i = 0; i < request.length; i++) {
        this.write(request.subarray(i, i + 1))
        await new Promise((resolve) => setImmediate(resolve))
      }
    } else {
      this.write(request)
    }
    const head = await this.readHead(5_000)
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, key }
  }

  /** A complete, checked upgrade followed by the server's `$welcome`. */
  async upgrade (port: number, options: { slow?: boolean } = {}): Promise<Record<string, any>> {
    const { status, head, key } = await this.handshake(port, options)
    assert.equal(status, 101, head)
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64')
    assert.match(head, new RegExp(`\r\nsec-websocket-accept: ${accept.replace(/[+/]/g, '\\$&')}\r\n`, 'i'))
    const welcome = await this.nextMessage(5_000)
    assert.equal(welcome.type, '$welcome')
    return welcome
  }

  async readHead (timeoutMs: number): Promise<string> {
    return await this.#until((buffer) => {
      const end = buffer.indexOf('\r\n\r\n')
      return end < 0 ? undefined : { value: buffer.subarray(0, end + 4).toString('latin1'), used: end + 4 }
    }, timeoutMs, 'an HTTP response head')
  }

  async nextFrame (timeoutMs: number): Promise<ServerFrame> {
    return await this.#until(parseServerFrame, timeoutMs, 'a frame')
  }

  /** The next text frame, parsed; control frames before it are skipped. */
  async nextMessage (timeoutMs: number): Promise<Record<string, any>> {
    const deadline = Date.now() + timeoutMs
    for (let i = 0; i < 100; i++) {
      const frame = await this.nextFrame(Math.max(1, deadline - Date.now()))
      if (frame.opcode === OP_TEXT) return JSON.parse(frame.payload.toString('utf8'))
      assert.notEqual(frame.opcode, OP_CLOSE, `closed with ${closeCodeOf(frame)} while a message was expected`)
    }
    throw new Error('no text frame among 100 frames')
  }

  /** The code of the server's close frame; frames before it are skipped. */
  async closeCode (timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs
    for (let i = 0; i < 100; i++) {
      const frame = await this.nextFrame(Math.max(1, deadline - Date.now()))
      if (frame.opcode === OP_CLOSE) return closeCodeOf(frame)
    }
    throw new Error('no close frame among 100 frames')
  }

  /** Everything the server sent until it closed the connection (at most `timeoutMs`). */
  async readToEnd (timeoutMs: number): Promise<Buffer> {
    await within(this.ended, timeoutMs, 'the server to close the connection')
    return this.#buffer
  }

  async #until<T> (take: Take<T>, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const taken = take(this.#buffer)
      if (taken !== undefined) {
        this.#buffer = this.#buffer.subarray(taken.used)
        return taken.value
      }
      if (this.#isEnded) throw new Error(`connection closed while waiting for ${what}`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => { clearTimeout(timer); resolve() }
      })
      this.#wake = undefined
    }
  }
}

/** `promise`, or a failure after `timeoutMs`; the timer is cleared so it cannot hold the process. */
export async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export function handshakeRequest (port: number, key: string, extraHeaders = ''): string {
  return 'GET /ws HTTP/1.1\r\n' +
    `Host: 127.0.0.1:${port}\r\n` +
    'Upgrade: websocket\r\n' +
    'Connection: Upgrade\r\n' +
    'Sec-WebSocket-Version: 13\r\n' +
    `Sec-WebSocket-Key: ${key}\r\n` +
    'Sec-WebSocket-Protocol: realtime.v1\r\n' +
    extraHeaders +
    '\r\n'
}

/** A client frame; clients must mask, so `mask: false` is a protocol violation. */
export function clientFrame (opcode: number, payload: Buffer | string, { fin = true, mask = true }: { fin?: boolean, mask?: boolean } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  assert.ok(data.length <= 0xffff, 'test frames stay under 64 KiB')
  const header = data.length < 126 ? Buffer.alloc(2) : Buffer.alloc(4)
  header[0] = (fin ? 0x80 : 0) | opcode
  header[1] = (mask ? 0x80 : 0) | (data.length < 126 ? data.length : 126)
  if (data.length >= 126) header.writeUInt16BE(data.length, 2)
  if (!mask) return Buffer.concat([header, data])
  const key = randomBytes(4)
  const masked = Buffer.alloc(data.length)
  for (let i = 0; i < data.length; i++) masked[i] = (data[i] as number) ^ (key[i % 4] as number)
  return Buffer.concat([header, key, masked])
}

export function echoFrame (id: number, text: string): Buffer {
  return clientFrame(OP_TEXT, JSON.stringify({ type: 'echo', id, data: { text } }))
}

export function closeFrame (code: number): Buffer {
  const payload = Buffer.alloc(2)
  payload.writeUInt16BE(code)
  return clientFrame(OP_CLOSE, payload)
}

const parseServerFrame: Take<ServerFrame> = (buffer) => {
  if (buffer.length < 2) return undefined
  const first = buffer[0] as number
  const second = buffer[1] as number
  assert.equal(second & 0x80, 0, 'a server never masks its frames')
  let length = second & 0x7f
  let offset = 2
  if (length === 126) {
    if (buffer.length < 4) return undefined
    length = buffer.readUInt16BE(2)
    offset = 4
  } else if (length === 127) {
    if (buffer.length < 10) return undefined
    length = Number(buffer.readBigUInt64BE(2))
    offset = 10
  }
  if (buffer.length < offset + length) return undefined
  return {
    value: { fin: (first & 0x80) !== 0, opcode: first & 0x0f, payload: Buffer.from(buffer.subarray(offset, offset + length)) },
    used: offset + length
  }
}

export function closeCodeOf (frame: ServerFrame): number {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
}

export function echoRoute (app: FastifyInstance): void {
  app.wsRoute('/ws').message('echo', {
    data: Type.Object({ text: Type.String() }),
    reply: Type.Object({ text: Type.String() })
  }, (data) => ({ text: data.text }))
}

export interface RawServer extends TestServer {
  port: number
  /** Raw sockets of the test, destroyed before the app closes. */
  sockets: Set<Socket>
}

export async function start (t: TestContext, options: RealtimeOptions = {}): Promise<RawServer> {
  const sockets = new Set<Socket>()
  // Registered before startServer's own hook so it runs first: app.close() drains, and a raw
  // peer that never answers the 1012 close would hold it for the whole drainMs.
  t.after(() => { for (const socket of sockets) socket.destroy() })
  // A short drain: shutdown spreads its 1012 closes over drainMs / 2, seconds by default.
  const server = await startServer(t, echoRoute, { drainMs: 200, ...options })
  return { ...server, port: Number(new URL(server.httpUrl).port), sockets }
}

/** The healthy bystander still gets its echo: its connection and the process are fine. */
export async function assertEchoes (client: TestClient, text: string): Promise<void> {
  assert.equal(client.socket.readyState, client.socket.OPEN, 'the healthy connection is still open')
  const reply = await client.request('echo', { text })
  assert.equal(reply.type, '$reply')
  assert.deepEqual(reply.data, { text })
}

export async function assertRawEchoes (peer: RawPeer, id: number, text: string): Promise<void> {
  peer.write(echoFrame(id, text))
  assert.deepEqual(await peer.nextMessage(5_000), { type: '$reply', id, data: { text } })
}

/** Runs `work` while the healthy client keeps echoing, so an idle timeout never picks it. */
export async function whileEchoing<T> (client: TestClient, work: Promise<T>): Promise<T> {
  let done = false
  const settled = work.finally(() => { done = true })
  for (let i = 0; i < 200; i++) {
    if (done) break
    await assertEchoes(client, `busy-${i}`)
    if (!done) await sleep(40)
  }
  return await settled
}

export function closeLogs (server: TestServer, connectionId: unknown): Array<Record<string, unknown>> {
  return server.logs.filter((line) => line.msg === 'ws.close' && line.connectionId === connectionId)
}
