import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { RealtimeOptions } from '../plugin/index.js'
import { TestClient } from './helpers/client.js'
import { metricValue } from './helpers/metrics.js'
import { eventually, startServer, type TestServer } from './helpers/server.js'

// Misbehaving peers speak raw TCP, since a real WebSocket client refuses to send what they send.

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const OP_TEXT = 0x1
const OP_CLOSE = 0x8

interface ServerFrame {
  fin: boolean
  opcode: number
  payload: Buffer
}

type Take<T> = (buffer: Buffer) => { value: T, used: number } | undefined

/** A TCP peer that writes whatever bytes a test wants and parses what the server answers. */
class RawPeer {
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

  static async open (server: RawServer): Promise<RawPeer> {
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
async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
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

function handshakeRequest (port: number, key: string, extraHeaders = ''): string {
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
function clientFrame (opcode: number, payload: Buffer | string, { fin = true, mask = true }: { fin?: boolean, mask?: boolean } = {}): Buffer {
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

function echoFrame (id: number, text: string): Buffer {
  return clientFrame(OP_TEXT, JSON.stringify({ type: 'echo', id, data: { text } }))
}

function closeFrame (code: number): Buffer {
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

function closeCodeOf (frame: ServerFrame): number {
  return frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005
}

function echoRoute (app: FastifyInstance): void {
  app.wsRoute('/ws').message('echo', {
    data: Type.Object({ text: Type.String() }),
    reply: Type.Object({ text: Type.String() })
  }, (data) => ({ text: data.text }))
}

interface RawServer extends TestServer {
  port: number
  /** Raw sockets of the test, destroyed before the app closes. */
  sockets: Set<Socket>
}

async function start (t: TestContext, options: RealtimeOptions = {}): Promise<RawServer> {
  const sockets = new Set<Socket>()
  // Registered before startServer's own hook so it runs first: app.close() drains, and a raw
  // peer that never answers the 1012 close would hold it for the whole drainMs.
  t.after(() => { for (const socket of sockets) socket.destroy() })
  // A short drain: shutdown spreads its 1012 closes over drainMs / 2, seconds by default.
  const server = await startServer(t, echoRoute, { drainMs: 200, ...options })
  return { ...server, port: Number(new URL(server.httpUrl).port), sockets }
}

/** The healthy bystander still gets its echo: its connection and the process are fine. */
async function assertEchoes (client: TestClient, text: string): Promise<void> {
  assert.equal(client.socket.readyState, client.socket.OPEN, 'the healthy connection is still open')
  const reply = await client.request('echo', { text })
  assert.equal(reply.type, '$reply')
  assert.deepEqual(reply.data, { text })
}

async function assertRawEchoes (peer: RawPeer, id: number, text: string): Promise<void> {
  peer.write(echoFrame(id, text))
  assert.deepEqual(await peer.nextMessage(5_000), { type: '$reply', id, data: { text } })
}

/** Runs `work` while the healthy client keeps echoing, so an idle timeout never picks it. */
async function whileEchoing<T> (client: TestClient, work: Promise<T>): Promise<T> {
  let done = false
  const settled = work.finally(() => { done = true })
  for (let i = 0; i < 200; i++) {
    if (done) break
    await assertEchoes(client, `busy-${i}`)
    if (!done) await sleep(40)
  }
  return await settled
}

function closeLogs (server: TestServer, connectionId: unknown): Array<Record<string, unknown>> {
  return server.logs.filter((line) => line.msg === 'ws.close' && line.connectionId === connectionId)
}

test('a handshake written one byte at a time still upgrades and is welcomed', async (t) => {
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const peer = await RawPeer.open(server)
  const startedAt = performance.now()
  const welcome = await peer.upgrade(server.port, { slow: true })
  assert.equal(typeof welcome.data.connectionId, 'string')
  await assertRawEchoes(peer, 1, 'slow')
  t.diagnostic(`byte-per-turn handshake took ${Math.round(performance.now() - startedAt)} ms`)
  await assertEchoes(healthy, 'after slow handshake')
  assert.equal(server.app.realtime.connectionCount, 2)
})

test('an upgrade request with thousands of headers is refused by the HTTP parser; the server keeps serving', async (t) => {
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const peer = await RawPeer.open(server)
  let headers = ''
  for (let i = 0; i < 3_000; i++) headers += `x-h${i}: v\r\n`
  peer.write(handshakeRequest(server.port, randomBytes(16).toString('base64'), headers))
  const response = (await peer.readToEnd(5_000)).toString('latin1')
  // The server may reset the socket before we read the 431 (we are still writing), so an
  // empty answer is also a refusal; an upgrade never is.
  assert.doesNotMatch(response, /^HTTP\/1\.1 101/)
  if (response !== '') assert.match(response, /^HTTP\/1\.1 431 /)
  t.diagnostic(`answer: ${response === '' ? '(reset)' : response.split('\r\n')[0]}`)
  assert.equal(server.app.realtime.connectionCount, 1)
  await assertEchoes(healthy, 'after header flood')
  const fresh = await RawPeer.open(server)
  await fresh.upgrade(server.port)
})

test('frames that never finish do not count as activity: the idle timeout closes with 4000', async (t) => {
  const server = await start(t, { idleTimeoutMs: 200, heartbeatMs: 0 })
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const fragment = await RawPeer.open(server)
  const truncated = await RawPeer.open(server)
  const fragmentWelcome = await fragment.upgrade(server.port)
  const truncatedWelcome = await truncated.upgrade(server.port)
  const startedAt = performance.now()
  // A first fragment (FIN=0) whose continuation never comes.
  fragment.write(clientFrame(OP_TEXT, '{"type":"echo","id":1,"data":{"te', { fin: false }))
  // A complete header announcing 100 payload bytes, followed by only 10 of them.
  truncated.write(clientFrame(OP_TEXT, 'x'.repeat(100)).subarray(0, 2 + 4 + 10))
  const codes = await whileEchoing(healthy, Promise.all([fragment.closeCode(3_000), truncated.closeCode(3_000)]))
  const elapsedMs = performance.now() - startedAt
  assert.deepEqual(codes, [4000, 4000])
  assert.ok(elapsedMs < 2_000, `closed after ${Math.round(elapsedMs)} ms`)
  t.diagnostic(`idle close after ${Math.round(elapsedMs)} ms (idleTimeoutMs 200)`)
  fragment.write(closeFrame(4000))
  // The server would read a close frame as the rest of the unfinished payload: end TCP instead.
  truncated.socket.end()
  await whileEchoing(healthy, Promise.all([fragment.ended, truncated.ended]))
  await eventually(() => server.app.realtime.connectionCount === 1, 2_000, 'the idle peers to be dropped')
  const idleClosed = server.logs.filter((line) => line.msg === 'ws.idle_timeout').map((line) => line.connectionId)
  assert.deepEqual(new Set(idleClosed), new Set([fragmentWelcome.data.connectionId, truncatedWelcome.data.connectionId]))
  // Both are logged with the code the server sent, whether or not the peer could answer it.
  for (const welcome of [fragmentWelcome, truncatedWelcome]) {
    assert.deepEqual(closeLogs(server, welcome.data.connectionId).map((line) => line.code), [4000])
  }
  await assertEchoes(healthy, 'after idle closes')
})

const violations = [
  { name: 'an unknown opcode (0x3)', bytes: () => clientFrame(0x3, ''), code: 1002 },
  { name: 'an unmasked client frame', bytes: () => clientFrame(OP_TEXT, '{"type":"echo","data":{"text":"x"}}', { mask: false }), code: 1002 },
  { name: 'a text frame with invalid UTF-8', bytes: () => clientFrame(OP_TEXT, Buffer.from([0x22, 0xff, 0xfe, 0x22])), code: 1007 }
]

test('protocol violations close only the offending connection, with 1002 or 1007', async (t) => {
  const server = await start(t)
  const registry = server.app.realtime.metricsRegistry
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  for (const violation of violations) {
    const peer = await RawPeer.open(server)
    await peer.upgrade(server.port)
    peer.write(violation.bytes())
    assert.equal(await peer.closeCode(2_000), violation.code, violation.name)
    // ws ends the TCP connection itself after a protocol error, without waiting for our close.
    await within(peer.ended, 2_000, `end of the connection after ${violation.name}`)
    await assertEchoes(healthy, `after ${violation.name}`)
  }
  await eventually(() => server.app.realtime.connectionCount === 1, 2_000, 'the offenders to be dropped')
  // Counted under the code the server sent, not the 1006 of a peer that never answered.
  assert.equal(await metricValue(registry, 'ws_disconnections_total', { route: '/ws', code: '1002' }), 2)
  assert.equal(await metricValue(registry, 'ws_disconnections_total', { route: '/ws', code: '1007' }), 1)
  await assertEchoes(healthy, 'after every violation')
})

test('1000 concurrent connections are each welcomed, served, and released', async (t) => {
  const total = 1_000
  const concurrency = 50
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const startedAt = performance.now()
  const peers: RawPeer[] = []
  const connectionIds = new Set<unknown>()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++
      const peer = await RawPeer.open(server)
      peers.push(peer)
      connectionIds.add((await peer.upgrade(server.port)).data.connectionId)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const openedMs = performance.now() - startedAt
  assert.equal(peers.length, total)
  assert.equal(connectionIds.size, total, 'every connection has its own id')
  // The healthy bystander is one more.
  assert.equal(server.app.realtime.connectionCount, total + 1)

  const sample = peers.filter((_, i) => i % 50 === 0)
  await Promise.all(sample.map(async (peer, i) => await assertRawEchoes(peer, i + 1, `sample-${i}`)))
  await assertEchoes(healthy, 'with 1000 neighbours')

  for (const peer of peers) peer.write(closeFrame(1000))
  const codes = await Promise.all(peers.map(async (peer) => await peer.closeCode(10_000)))
  assert.ok(codes.every((code) => code === 1000), 'each close is answered with 1000')
  await Promise.all(peers.map(async (peer) => await peer.readToEnd(10_000)))
  await eventually(() => server.app.realtime.connectionCount === 1, 5_000, 'the 1000 connections to be released')
  await assertEchoes(healthy, 'after the crowd left')
  healthy.socket.close(1000)
  assert.equal((await healthy.closed).code, 1000)
  await eventually(() => server.app.realtime.connectionCount === 0, 2_000, 'the count to return to 0')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '1000' }), total + 1)
  t.diagnostic(`opened ${total} in ${Math.round(openedMs)} ms, whole test ${Math.round(performance.now() - startedAt)} ms`)
})
