import { WebSocket } from 'ws'
import { now } from './clock.js'
import type { Recorder } from './recorder.js'

export const SUBPROTOCOL = 'realtime.v1'
/** How long a polite close may take before the socket is torn down. */
const CLOSE_GRACE_MS = 1_000

export interface Target {
  url: string
  headers: Record<string, string>
  timeoutMs: number
  insecure: boolean
  /** PEM CA certificates for wss://, replacing the system's; undefined: the system's. */
  ca: string | undefined
}

/** A server frame, parsed. */
export type Frame = Record<string, unknown> & { type: string }

export interface Welcome {
  connectionId?: string
  heartbeatMs?: number
  limits?: { maxPayload?: number, messagesPerSecond?: number }
}

/** Why a handshake failed, as reports group them: `http_503`, `close_1006`, `timeout`, `ECONNREFUSED`. */
export class ConnectError extends Error {
  override name = 'ConnectError'
  readonly reason: string

  constructor (reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

/**
 * One realtime.v1 connection after its `$welcome`. Scenarios set `onFrame` and await `closed`;
 * the close they asked for is told apart from one the server (or the network) decided.
 */
export class RealtimeConnection {
  readonly socket: WebSocket
  readonly welcome: Welcome
  readonly closed: Promise<void>
  onFrame: (frame: Frame, raw: string, receivedAt: number) => void = () => {}
  /** Shared-clock time of the close; undefined while open. */
  closedAt: number | undefined
  #requested = false

  constructor (socket: WebSocket, welcome: Welcome, recorder: Recorder) {
    this.socket = socket
    this.welcome = welcome
    socket.on('message', (data) => {
      const receivedAt = now()
      const raw = data.toString()
      let frame: unknown
      try {
        frame = JSON.parse(raw)
      } catch {
        recorder.count('invalid_frames')
        return
      }
      if (typeof frame !== 'object' || frame === null || typeof (frame as Frame).type !== 'string') {
        recorder.count('invalid_frames')
        return
      }
      this.onFrame(frame as Frame, raw, receivedAt)
    })
    this.closed = new Promise((resolve) => {
      socket.once('close', (code) => {
        this.closedAt = now()
        recorder.closed()
        // Closes the load test asked for say nothing about the server; reports list the others.
        if (this.#requested) {
          recorder.count('client_closes')
        } else {
          recorder.count('unexpected_closes')
          recorder.count(`closes:${code}`)
        }
        resolve()
      })
    })
  }

  /** Whether the load test closed it, rather than the server or the network. */
  get requestedClose (): boolean {
    return this.#requested
  }

  get open (): boolean {
    return this.socket.readyState === WebSocket.OPEN
  }

  send (frame: Record<string, unknown>): boolean {
    return this.sendText(JSON.stringify(frame))
  }

  sendText (text: string): boolean {
    if (!this.open) return false
    this.socket.send(text)
    return true
  }

  /** Closes with 1000 and resolves once the socket is gone, forcibly after a grace period. */
  async close (): Promise<void> {
    this.#requested = true
    if (this.socket.readyState === WebSocket.CLOSED) return
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000, 'load test done')
    const timer = setTimeout(() => this.socket.terminate(), CLOSE_GRACE_MS)
    await this.closed
    clearTimeout(timer)
  }
}

/**
 * Opens a connection and waits for `$welcome`, recording the attempt, the handshake time and the
 * reason of a failure. The timeout covers the whole handshake: a node that upgrades and then
 * never welcomes is as unusable as one that never answers.
 */
export async function connect (target: Target, recorder: Recorder): Promise<RealtimeConnection> {
  const startedAt = now()
  recorder.count('connect_attempts', 1, startedAt)
  const socket = new WebSocket(target.url, [SUBPROTOCOL], {
    headers: target.headers,
    handshakeTimeout: target.timeoutMs,
    perMessageDeflate: false,
    rejectUnauthorized: !target.insecure,
    ca: target.ca
  })
  try {
    const welcome = await untilWelcome(socket, target.timeoutMs)
    const welcomedAt = now()
    recorder.count('connects', 1, startedAt)
    recorder.observe('connect', welcomedAt - startedAt, startedAt)
    recorder.opened()
    const connection = new RealtimeConnection(socket, welcome, recorder)
    socket.on('error', () => {}) // the close that follows is what counts
    return connection
  } catch (err) {
    const reason = err instanceof ConnectError ? err.reason : 'error'
    recorder.count('connect_failures', 1, startedAt)
    recorder.count(`connect_failures:${reason}`, 1, startedAt)
    if (reason === 'timeout') recorder.count('timeouts', 1, startedAt)
    socket.on('error', () => {})
    socket.terminate()
    throw err
  }
}

async function untilWelcome (socket: WebSocket, timeoutMs: number): Promise<Welcome> {
  return await new Promise<Welcome>((resolve, reject) => {
    const fail = (error: ConnectError): void => {
      cleanup()
      reject(error)
    }
    const timer = setTimeout(() => fail(new ConnectError('timeout', `no $welcome within ${timeoutMs} ms`)), timeoutMs)
    const onError = (err: Error & { code?: string }): void => {
      // ws reports a refused upgrade only in its message: "Unexpected server response: 503".
      const status = /Unexpected server response: (\d+)/.exec(err.message)?.[1]
      if (status !== undefined) fail(new ConnectError(`http_${status}`, err.message))
      else if (/handshake has timed out/.test(err.message)) fail(new ConnectError('timeout', err.message))
      else fail(new ConnectError(err.code ?? 'error', err.message))
    }
    const onClose = (code: number): void => fail(new ConnectError(`close_${code}`, `closed with ${code} before $welcome`))
    const onMessage = (data: Buffer): void => {
      let frame: Frame | undefined
      try {
        frame = JSON.parse(data.toString()) as Frame
      } catch {}
      if (frame?.type !== '$welcome') {
        fail(new ConnectError('no_welcome', `the first frame was not $welcome: ${data.toString().slice(0, 200)}`))
        return
      }
      cleanup()
      resolve((frame.data ?? {}) as Welcome)
    }
    function cleanup (): void {
      clearTimeout(timer)
      socket.off('error', onError)
      socket.off('close', onClose)
      socket.off('message', onMessage)
    }
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.on('message', onMessage)
  })
}
