import { now } from '../clock.js'
import type { Frame, RealtimeConnection } from '../connection.js'
import { fixedRate, shareOf } from '../pacing.js'
import { connectWithBackoff } from '../session.js'
import type { Scenario, ScenarioContext } from './context.js'
import { countError, errorCode, InFlight } from './requests.js'
import { waitUntil } from './wait.js'

/**
 * Past this many unanswered messages a connection is skipped by the fixed-rate sender: a server
 * that stopped answering would otherwise make the load generator hoard memory. Skipped sends
 * are counted, so a report never hides that the rate was not offered.
 */
const MAX_IN_FLIGHT_PER_CONNECTION = 1_000

/**
 * Request/reply load: closed loop (`--pipeline` messages in flight per connection, each answer
 * sends the next) or open loop (`--rate` messages per second across connections, whatever the
 * answers do). `soak` is the open loop run for long.
 */
export function echoScenario (context: ScenarioContext): Scenario {
  const { options, recorder, signal } = context
  const users: EchoUser[] = Array.from({ length: shareOf(options.connections, context.index, context.count) }, () => new EchoUser(context))
  const workerRate = options.rate === undefined ? undefined : options.rate * users.length / options.connections
  let rate: { stop: () => void } | undefined
  let cursor = 0
  const sweeper = setInterval(() => { for (const user of users) user.inFlight.expire(now(), options.timeoutMs, recorder) }, 1_000)

  context.go.then(() => {
    if (signal.aborted) return
    if (workerRate === undefined) {
      for (const user of users) user.fill()
      return
    }
    rate = fixedRate(workerRate, (due) => {
      let sent = 0
      // A full round of connections that could not send ends the batch.
      for (let idle = 0; sent < due && idle < users.length;) {
        const user = users[cursor++ % users.length] as EchoUser
        if (user.sendOne()) {
          sent++
          idle = 0
        } else {
          idle++
        }
      }
      // What could not be sent now is not sent later: a fixed rate is a schedule, not a backlog.
      if (sent < due) recorder.count('skipped_sends', due - sent)
    })
  })

  return {
    async setup () {
      await Promise.all(users.map(async (user) => await user.start()))
    },
    async finish () {
      rate?.stop()
      await waitUntil(() => users.every((user) => user.inFlight.size === 0), options.timeoutMs)
      clearInterval(sweeper)
      for (const user of users) user.inFlight.expire(Number.POSITIVE_INFINITY, 0, recorder)
      await Promise.all(users.map(async (user) => await user.stop()))
    }
  }
}

class EchoUser {
  readonly inFlight = new InFlight()
  readonly #context: ScenarioContext
  readonly #prefix: string
  readonly #suffix: string
  #connection: RealtimeConnection | undefined
  #loop: Promise<void> = Promise.resolve()
  #started = false

  constructor (context: ScenarioContext) {
    this.#context = context
    // The frame is assembled around the id rather than stringified each time: at tens of
    // thousands of messages per second JSON.stringify of the data is the sender's main cost.
    this.#prefix = `{"type":${JSON.stringify(context.options.messageType)},"id":`
    this.#suffix = `,"data":${context.options.data}}`
  }

  get canSend (): boolean {
    return this.#connection?.open === true && this.inFlight.size < MAX_IN_FLIGHT_PER_CONNECTION
  }

  async start (): Promise<void> {
    const first = await this.#open()
    if (first !== undefined) this.#loop = this.#keepOpen(first)
    this.#context.go.then(() => { this.#started = true })
  }

  /** Closed loop: tops the pipeline up to `--pipeline` messages in flight. */
  fill (): void {
    const { options, signal } = this.#context
    if (options.rate !== undefined || signal.aborted) return
    while (this.inFlight.size < options.pipeline && this.sendOne());
  }

  sendOne (): boolean {
    if (!this.canSend) return false
    const sentAt = now()
    const id = this.inFlight.add(sentAt)
    this.#connection?.sendText(this.#prefix + id + this.#suffix)
    this.#context.recorder.count('requests', 1, sentAt)
    return true
  }

  async stop (): Promise<void> {
    await this.#connection?.close()
    await this.#loop
  }

  async #open (droppedAt?: number): Promise<RealtimeConnection | undefined> {
    const { options, target, recorder, signal } = this.#context
    const connection = await connectWithBackoff(target, recorder, options.backoffMs, signal, droppedAt)
    if (connection === undefined) return undefined
    this.#context.reportWelcome(connection.welcome.limits?.messagesPerSecond)
    connection.onFrame = (frame, _raw, receivedAt) => this.#answer(frame, receivedAt)
    this.#connection = connection
    return connection
  }

  /** Reconnects after a close the user did not ask for, for as long as the run goes on. */
  async #keepOpen (connection: RealtimeConnection): Promise<void> {
    let current: RealtimeConnection | undefined = connection
    while (current !== undefined) {
      await current.closed
      this.inFlight.abandon(this.#context.recorder)
      if (this.#context.signal.aborted) return
      current = await this.#open(now())
      if (this.#started) this.fill()
    }
  }

  #answer (frame: Frame, receivedAt: number): void {
    const { recorder } = this.#context
    if (frame.type !== '$reply' && frame.type !== '$error') return
    const sentAt = this.inFlight.settle(frame)
    if (sentAt === undefined) {
      // An $error without an id answers a frame the server could not read at all.
      if (frame.type === '$error') recorder.count(`errors:${errorCode(frame)}`)
      return
    }
    if (frame.type === '$reply') {
      recorder.count('replies', 1, sentAt)
      recorder.observe('reply', receivedAt - sentAt, sentAt)
    } else {
      countError(recorder, errorCode(frame), sentAt)
    }
    this.fill()
  }
}
