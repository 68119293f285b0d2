import { WebSocket } from 'ws'
import { compareOffsets } from '../../plugin/index.js'

/**
 * A client that follows PROTOCOL.md's recovery rules with nothing else: it reconnects after
 * any close (with jittered backoff), subscribes again with the last offset and epoch it saw,
 * and drops any event at or below that offset. It records what it accepted and what it
 * dropped, so a test can prove exactly-once, in-order delivery across reconnects.
 */
export class ResumingSubscriber {
  readonly accepted: string[] = []
  duplicates = 0
  reconnects = 0
  /** `recovered` of every `$subscribe` answer after the first. */
  readonly recoveries: boolean[] = []
  #last: string | undefined
  #epoch: string | undefined
  #socket: WebSocket | undefined
  #stopped = false
  #subscribed = false

  constructor (readonly url: string, readonly topic: string) {}

  /** Resolves once the first subscription is live. */
  async start (): Promise<void> {
    this.#connect()
    const deadline = Date.now() + 10_000
    while (!this.#subscribed) {
      if (Date.now() > deadline) throw new Error('the subscriber never subscribed')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  get last (): string | undefined {
    return this.#last
  }

  stop (): void {
    this.#stopped = true
    this.#socket?.terminate()
  }

  #connect (): void {
    if (this.#stopped) return
    const socket = new WebSocket(this.url, ['realtime.v1'])
    this.#socket = socket
    socket.on('message', (raw) => this.#frame(socket, JSON.parse(raw.toString())))
    socket.on('error', () => {})
    socket.once('close', () => {
      if (this.#stopped) return
      this.reconnects++
      setTimeout(() => this.#connect(), 50 + Math.random() * 150)
    })
  }

  #frame (socket: WebSocket, frame: { type: string, id?: unknown, data?: any, topic?: string, offset?: string }): void {
    if (frame.type === '$welcome') {
      const data: Record<string, string> = { topic: this.topic }
      if (this.#last !== undefined) data.since = this.#last
      if (this.#epoch !== undefined) data.epoch = this.#epoch
      socket.send(JSON.stringify({ type: '$subscribe', id: 'sub', data }))
      return
    }
    if (frame.type === '$reply' && frame.id === 'sub') {
      if (this.#subscribed) this.recoveries.push(frame.data.recovered === true)
      this.#subscribed = true
      this.#epoch = frame.data.epoch
      this.#last ??= frame.data.offset
      return
    }
    if (frame.topic !== this.topic || frame.offset === undefined) return
    if (this.#last !== undefined && compareOffsets(frame.offset, this.#last) <= 0) {
      this.duplicates++
      return
    }
    this.#last = frame.offset
    this.accepted.push(frame.offset)
  }
}

/** Says something to a room every `intervalMs` through its own reconnecting connection. */
export class Speaker {
  sent = 0
  acknowledged = 0
  #socket: WebSocket | undefined
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor (readonly url: string, readonly room: string, readonly intervalMs: number) {}

  start (): void {
    this.#connect()
    this.#timer = setInterval(() => {
      if (this.#socket?.readyState !== WebSocket.OPEN) return
      this.sent++
      this.#socket.send(JSON.stringify({ type: 'say', id: this.sent, data: { room: this.room, text: `message ${this.sent}` } }))
    }, this.intervalMs)
  }

  stop (): void {
    this.#stopped = true
    clearInterval(this.#timer)
    this.#socket?.terminate()
  }

  #connect (): void {
    if (this.#stopped) return
    const socket = new WebSocket(this.url, ['realtime.v1'])
    this.#socket = socket
    socket.on('message', (raw) => {
      if (JSON.parse(raw.toString()).type === '$reply') this.acknowledged++
    })
    socket.on('error', () => {})
    socket.once('close', () => {
      if (!this.#stopped) setTimeout(() => this.#connect(), 50 + Math.random() * 150)
    })
  }
}
