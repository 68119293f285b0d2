import type { TestContext } from 'node:test'
import { WebSocket, type ClientOptions } from 'ws'

/** A parsed server frame. */
export type Frame = Record<string, any> & { type: string }

export interface Closed {
  code: number
  reason: string
}

/**
 * A plain `ws` client that records every frame, so tests can wait for the next one that
 * matches and assert on the raw protocol. It is closed when the test ends.
 */
export class TestClient {
  readonly socket: WebSocket
  readonly closed: Promise<Closed>
  welcome: Frame | undefined
  readonly #frames: Frame[] = []
  readonly #waiters: Array<{ match: (frame: Frame) => boolean, resolve: (frame: Frame) => void }> = []
  #nextId = 1

  private constructor (socket: WebSocket) {
    this.socket = socket
    socket.on('message', (data, isBinary) => {
      const frame = JSON.parse(isBinary ? (data as Buffer).toString('utf8') : data.toString()) as Frame
      const waiter = this.#waiters.findIndex((w) => w.match(frame))
      if (waiter >= 0) this.#waiters.splice(waiter, 1)[0]?.resolve(frame)
      else this.#frames.push(frame)
    })
    this.closed = new Promise((resolve) => {
      socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
  }

  /** Connects and waits for `$welcome`. */
  static async connect (t: TestContext, url: string, options: ClientOptions & { protocols?: string[] } = {}): Promise<TestClient> {
    const { protocols = ['realtime.v1'], ...clientOptions } = options
    const socket = new WebSocket(url, protocols, clientOptions)
    const client = new TestClient(socket)
    t.after(() => socket.terminate())
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve())
      socket.once('error', reject)
    })
    client.welcome = await client.next((frame) => frame.type === '$welcome')
    return client
  }

  /** The first unconsumed frame matching `match` (any frame by default). */
  async next (match: (frame: Frame) => boolean = () => true, timeoutMs = 2_000): Promise<Frame> {
    const index = this.#frames.findIndex(match)
    if (index >= 0) return this.#frames.splice(index, 1)[0] as Frame
    return await new Promise((resolve, reject) => {
      const waiter = { match, resolve: (frame: Frame) => { clearTimeout(timer); resolve(frame) } }
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
        reject(new Error(`no matching frame within ${timeoutMs} ms; unconsumed: ${JSON.stringify(this.#frames)}`))
      }, timeoutMs)
      this.#waiters.push(waiter)
    })
  }

  /** Frames received and not consumed yet, removed from the queue. */
  drain (): Frame[] {
    return this.#frames.splice(0)
  }

  send (frame: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(frame))
  }

  sendRaw (data: string | Buffer, binary = false): void {
    this.socket.send(data, { binary })
  }

  /** Sends a message with a fresh id and waits for its `$reply` or `$error`. */
  async request (type: string, data?: unknown): Promise<Frame> {
    const id = this.#nextId++
    this.send({ type, id, data })
    return await this.next((frame) => frame.id === id && (frame.type === '$reply' || frame.type === '$error'))
  }
}

/** Opens a raw upgrade and resolves with the HTTP status of a refusal (or 101). */
export async function upgradeStatus (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> {
  const { request } = await import('node:http')
  return await new Promise((resolve, reject) => {
    const req = request(url.replace(/^ws/, 'http'), {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers
      }
    })
    req.on('upgrade', (response, socket) => {
      socket.destroy()
      resolve({ status: response.statusCode ?? 0, headers: response.headers, body: '' })
    })
    req.on('response', (response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => { body += chunk.toString() })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    })
    req.on('error', reject)
    req.end()
  })
}
