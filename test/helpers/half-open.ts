import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'

// Sockets that connect and then stall, as a slowloris or a port scanner does: the socket guard's
// targets. Plain TCP, since no HTTP client stops halfway through a request on purpose.

const REQUEST_LINE = 'GET /ws HTTP/1.1\r\n'

/** A peer that sent what it was told and then nothing more. */
export interface HalfOpen {
  socket: Socket
  /** When the connect completed, in `performance.now()` time. */
  openedAt: number
  /** Everything the server sent. */
  received: () => string
  /** Resolves with the time the server ended the socket. */
  closed: Promise<number>
  isClosed: () => boolean
}

/**
 * Opens half-open sockets and destroys them when the test ends. Create it before the server:
 * after-hooks run in the order they were added, and a server closing first would wait for them.
 */
export class HalfOpenPeers {
  readonly #sockets = new Set<Socket>()

  constructor (t: TestContext) {
    t.after(() => { for (const socket of this.#sockets) socket.destroy() })
  }

  /** Destroys `socket` when the test ends. */
  track<T extends Socket> (socket: T): T {
    this.#sockets.add(socket)
    return socket
  }

  /** A TCP peer that sends `bytes` (maybe nothing) and then nothing more. */
  async open (port: number, bytes = ''): Promise<HalfOpen> {
    const socket = this.track(connect({ host: '127.0.0.1', port }))
    // Refused sockets are reset: what the test asserts is that they closed, and when.
    socket.on('error', () => {})
    let received = ''
    let isClosed = false
    socket.on('data', (chunk: Buffer) => { received += chunk.toString() })
    const closed = new Promise<number>((resolve) => socket.once('close', () => {
      isClosed = true
      resolve(performance.now())
    }))
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve())
      socket.once('error', reject)
    })
    if (bytes !== '') socket.write(bytes)
    return { socket, openedAt: performance.now(), received: () => received, closed, isClosed: () => isClosed }
  }

  /** `count` half-open sockets, alternately silent and stopping after the request line. */
  async flood (port: number, count: number): Promise<HalfOpen[]> {
    return await Promise.all(Array.from({ length: count }, async (_, i) => await this.open(port, i % 2 === 0 ? '' : REQUEST_LINE)))
  }
}
