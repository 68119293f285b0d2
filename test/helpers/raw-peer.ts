import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { acceptFor, clientFrame, decodeFrame, handshakeKey, OP_CLOSE, OP_TEXT, responseHead, upgradeRequest, type Frame } from '../../bench/ws-frames.js'
import type { RealtimeOptions } from '../../plugin/index.js'
import { TestClient } from './client.js'
import { startServer, within, type TestServer } from './server.js'

// Misbehaving peers speak raw TCP, since a real WebSocket client refuses to send what they send.
// The bytes come from the codec the load generators use.

export { clientFrame, handshakeKey, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT } from '../../bench/ws-frames.js'

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
    const key = handshakeKey()
    const request = Buffer.from(handshakeRequest(port, key))
    if (slow) {
      for (let i = 0; i < request.length; i++) {
        this.write(request.subarray(i, i + 1))
        await new Promise((resolve) => setImmediate(resolve))
      }
    } else {
      this.write(request)
    }
    const { head, status } = await this.#until(takeHead, 5_000, 'an HTTP response head')
    return { status, head, key }
  }

  /** A complete, checked upgrade followed by the server's `$welcome`. */
  async upgrade (port: number, options: { slow?: boolean } = {}): Promise<Record<string, any>> {
    const { status, head, key } = await this.handshake(port, options)
    assert.equal(status, 101, head)
    const accept = acceptFor(key)
    assert.match(head, new RegExp(`\r\nsec-websocket-accept: ${accept.replace(/[+/]/g, '\\$&')}\r\n`, 'i'))
    const welcome = await this.nextMessage(5_000)
    assert.equal(welcome.type, '$welcome')
    return welcome
  }

  async nextFrame (timeoutMs: number): Promise<Frame> {
    return await this.#until(parseFrame, timeoutMs, 'a frame')
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

/** The upgrade request the plugin's routes expect, to `/ws` on loopback. */
export function handshakeRequest (port: number, key: string, extraHeaders = ''): string {
  return upgradeRequest({ path: '/ws', host: `127.0.0.1:${port}`, key, protocol: 'realtime.v1', headers: extraHeaders })
}

export function echoFrame (id: number, text: string): Buffer {
  return clientFrame(OP_TEXT, JSON.stringify({ type: 'echo', id, data: { text } }))
}

export function closeFrame (code: number): Buffer {
  const payload = Buffer.alloc(2)
  payload.writeUInt16BE(code)
  return clientFrame(OP_CLOSE, payload)
}

const takeHead: Take<{ head: string, status: number }> = (buffer) => {
  const response = responseHead(buffer)
  return response === undefined ? undefined : { value: response, used: response.bytes }
}

const parseFrame: Take<Frame> = (buffer) => {
  const frame = decodeFrame(buffer)
  if (frame === undefined) return undefined
  assert.equal(frame.masked, false, 'a server never masks its frames')
  return { value: frame, used: frame.bytes }
}

export function closeCodeOf (frame: Frame): number {
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
