import { MARKER_PLACEHOLDER } from '../args.js'
import { now } from '../clock.js'
import type { Frame, RealtimeConnection } from '../connection.js'
import { compareOffsets } from '../../plugin/protocol/offsets.js'
import { fixedRate, pause, shareOf } from '../pacing.js'
import { connectWithBackoff } from '../session.js'
import type { Scenario, ScenarioContext } from './context.js'
import { countError, errorCode, InFlight } from './requests.js'
import { waitUntil } from './wait.js'

/** Codes after which a `$subscribe` is worth sending again; any other refusal ends the run. */
const PASSING_REFUSALS = new Set(['UNAVAILABLE', 'RATE_LIMITED'])
/** The end of a run waits for deliveries until none came for this long (or `--settle` is over). */
const QUIET_MS = 300

/**
 * One topic, many subscribers, a few publishers. Each published text carries a marker with the
 * publisher, a sequence number and the send time on the process-wide clock, so any subscriber in
 * any worker thread can time the delivery and tell a duplicate from a loss.
 */
export function fanoutScenario (context: ScenarioContext): Scenario {
  const { options, index, count } = context
  const firstPublisher = Array.from({ length: index }, (_, i) => shareOf(options.publishers, i, count)).reduce((sum, n) => sum + n, 0)
  const markerPattern = new RegExp(`lt-${context.runId}-(\\d+)-(\\d+)-(\\d+\\.\\d+)`)
  const delivery = { lastAt: 0 }
  const subscribers = Array.from({ length: shareOf(options.subscribers, index, count) }, () => new Subscriber(context, markerPattern, delivery))
  const publishers = Array.from({ length: shareOf(options.publishers, index, count) }, (_, i) => new Publisher(context, firstPublisher + i))
  const sweeper = setInterval(() => { for (const publisher of publishers) publisher.inFlight.expire(now(), options.timeoutMs, context.recorder) }, 1_000)

  return {
    async setup () {
      await Promise.all([...subscribers, ...publishers].map(async (peer) => await peer.start()))
    },
    async finish () {
      for (const publisher of publishers) publisher.stopSending()
      await waitUntil(() => publishers.every((publisher) => publisher.inFlight.size === 0), options.timeoutMs)
      clearInterval(sweeper)
      for (const publisher of publishers) publisher.inFlight.expire(Number.POSITIVE_INFINITY, 0, context.recorder)
      const settleUntil = performance.now() + options.settleMs
      await waitUntil(() => now() - delivery.lastAt >= QUIET_MS || performance.now() >= settleUntil, options.settleMs)
      await Promise.all([...subscribers, ...publishers].map(async (peer) => await peer.stop()))
    }
  }
}

/** Keeps a connection open, reconnecting after unrequested closes, until the run stops. */
abstract class Peer {
  protected readonly context: ScenarioContext
  protected connection: RealtimeConnection | undefined
  #loop: Promise<void> = Promise.resolve()

  constructor (context: ScenarioContext) {
    this.context = context
  }

  async start (): Promise<void> {
    const first = await this.#open()
    if (first === undefined) return
    this.#loop = this.#keepOpen(first)
    await this.opened()
  }

  async stop (): Promise<void> {
    await this.connection?.close()
    await this.#loop
  }

  /** Runs after each `$welcome`; setup waits for the first one to resolve. */
  protected abstract opened (): Promise<void>
  protected abstract frame (frame: Frame, raw: string, receivedAt: number): void
  protected dropped (): void {}

  async #open (droppedAt?: number): Promise<RealtimeConnection | undefined> {
    const { options, target, recorder, signal } = this.context
    const connection = await connectWithBackoff(target, recorder, options.backoffMs, signal, droppedAt)
    if (connection === undefined) return undefined
    this.context.reportWelcome(connection.welcome.limits?.messagesPerSecond)
    connection.onFrame = (frame, raw, receivedAt) => this.frame(frame, raw, receivedAt)
    this.connection = connection
    return connection
  }

  async #keepOpen (connection: RealtimeConnection): Promise<void> {
    let current: RealtimeConnection | undefined = connection
    while (current !== undefined) {
      await current.closed
      this.dropped()
      if (this.context.signal.aborted) return
      current = await this.#open(now())
      if (current !== undefined) this.opened()
    }
  }
}

class Subscriber extends Peer {
  readonly #pattern: RegExp
  readonly #delivery: { lastAt: number }
  /** What arrived from each publisher, to count each delivery once. */
  readonly #seen = new Map<string, SequenceWindow>()
  #lastOffset: string | undefined
  #epoch: string | undefined
  #subscribeId = 0
  #subscribed: (() => void) | undefined

  constructor (context: ScenarioContext, pattern: RegExp, delivery: { lastAt: number }) {
    super(context)
    this.#pattern = pattern
    this.#delivery = delivery
  }

  /** Subscribes, resuming from the last offset after a reconnect so the server replays the gap. */
  protected override async opened (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#subscribed = resolve
      this.#subscribe()
    })
  }

  #subscribe (): void {
    const since = this.#lastOffset === undefined ? {} : { since: this.#lastOffset, epoch: this.#epoch }
    this.connection?.send({ type: '$subscribe', id: ++this.#subscribeId, data: { topic: this.context.options.topic, ...since } })
  }

  protected override frame (frame: Frame, raw: string, receivedAt: number): void {
    if (frame.id === this.#subscribeId && (frame.type === '$reply' || frame.type === '$error')) {
      this.#answered(frame)
      return
    }
    if (frame.topic !== this.context.options.topic || typeof frame.offset !== 'string') return
    const { recorder } = this.context
    const marker = this.#pattern.exec(raw)
    if (marker === null) {
      recorder.count('foreign_events')
      return
    }
    const [, publisher, sequence, sentAtText] = marker
    const sentAt = Number(sentAtText)
    let window = this.#seen.get(publisher!)
    if (window === undefined) {
      window = new SequenceWindow()
      this.#seen.set(publisher!, window)
    }
    if (!window.accept(Number(sequence))) {
      recorder.count('duplicates', 1, sentAt)
      return
    }
    if (this.#lastOffset !== undefined && compareOffsets(frame.offset, this.#lastOffset) < 0) recorder.count('out_of_order', 1, sentAt)
    else this.#lastOffset = frame.offset
    this.#delivery.lastAt = receivedAt
    recorder.count('deliveries', 1, sentAt)
    recorder.observe('delivery', receivedAt - sentAt, sentAt)
  }

  #answered (frame: Frame): void {
    if (frame.type === '$reply') {
      const epoch = (frame.data as { epoch?: unknown } | undefined)?.epoch
      if (typeof epoch === 'string') this.#epoch = epoch
      this.#subscribed?.()
      return
    }
    const code = errorCode(frame)
    this.context.recorder.count(`subscribe_errors:${code}`)
    if (!PASSING_REFUSALS.has(code)) {
      this.context.post({ kind: 'fatal', message: `$subscribe to ${this.context.options.topic} was refused: ${code} ${(frame.error as { message?: string } | undefined)?.message ?? ''}`.trim() })
      this.#subscribed?.()
      return
    }
    const retryAfterMs = (frame.error as { retryAfterMs?: unknown } | undefined)?.retryAfterMs
    pause(typeof retryAfterMs === 'number' ? retryAfterMs : 1_000, this.context.signal).then(() => this.#subscribe())
  }
}

class Publisher extends Peer {
  readonly inFlight = new InFlight()
  readonly #number: number
  readonly #prefix: string
  readonly #dataParts: string[]
  #sequence = 0
  #rate: { stop: () => void } | undefined

  constructor (context: ScenarioContext, number: number) {
    super(context)
    this.#number = number
    this.#prefix = `{"type":${JSON.stringify(context.options.messageType)},"id":`
    this.#dataParts = context.options.data.split(MARKER_PLACEHOLDER)
    context.go.then(() => {
      if (context.signal.aborted) return
      this.#rate = fixedRate((context.options.rate ?? 0) / context.options.publishers, (due) => { for (let i = 0; i < due; i++) this.#publish() })
    })
  }

  protected override async opened (): Promise<void> {}

  stopSending (): void {
    this.#rate?.stop()
  }

  protected override dropped (): void {
    this.inFlight.abandon(this.context.recorder)
  }

  #publish (): void {
    const { recorder, runId } = this.context
    if (this.connection?.open !== true) {
      recorder.count('skipped_sends')
      return
    }
    const sentAt = now()
    const id = this.inFlight.add(sentAt)
    const marker = `lt-${runId}-${this.#number}-${++this.#sequence}-${sentAt.toFixed(3)}`
    this.connection.sendText(`${this.#prefix}${id},"data":${this.#dataParts.join(marker)}}`)
    recorder.count('requests', 1, sentAt)
  }

  protected override frame (frame: Frame, _raw: string, receivedAt: number): void {
    if (frame.type !== '$reply' && frame.type !== '$error') return
    const sentAt = this.inFlight.settle(frame)
    if (sentAt === undefined) return
    if (frame.type === '$reply') {
      this.context.recorder.count('publishes_acked', 1, sentAt)
      this.context.recorder.observe('publish', receivedAt - sentAt, sentAt)
    } else {
      countError(this.context.recorder, errorCode(frame), sentAt)
    }
  }
}

/**
 * The sequence numbers seen from one publisher, in memory that grows with what is missing rather
 * than with what arrived: the highest seen, and the gaps below it still waited for.
 */
export class SequenceWindow {
  #highest = 0
  readonly #gaps = new Set<number>()

  /** True the first time `sequence` (from 1) is seen, false for a repeat. */
  accept (sequence: number): boolean {
    if (sequence > this.#highest) {
      for (let missing = this.#highest + 1; missing < sequence; missing++) this.#gaps.add(missing)
      this.#highest = sequence
      return true
    }
    return this.#gaps.delete(sequence)
  }
}
