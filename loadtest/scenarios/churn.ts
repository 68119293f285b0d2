import type { RealtimeConnection } from '../connection.js'
import { pause, randomBetween, shareOf } from '../pacing.js'
import { connectWithBackoff } from '../session.js'
import type { Scenario, ScenarioContext } from './context.js'

/**
 * Connection storms: each virtual user connects, keeps the connection a random `--hold`, closes
 * it and connects again at once. When the server closes first (a drain's 1012, a killed node's
 * 1006), the user reconnects with backoff as a real client would, and the time until its next
 * `$welcome` is the reconnect time.
 */
export function churnScenario (context: ScenarioContext): Scenario {
  const { options, index, count } = context
  const users = Array.from({ length: shareOf(options.connections, index, count) }, () => new ChurnUser(context))
  let running: Promise<void[]> | undefined
  context.go.then(() => {
    if (!context.signal.aborted) running = Promise.all(users.map(async (user) => await user.run()))
  })
  return {
    async setup () {},
    async finish () {
      await Promise.all(users.map(async (user) => await user.stop()))
      await running
    }
  }
}

class ChurnUser {
  readonly #context: ScenarioContext
  #connection: RealtimeConnection | undefined

  constructor (context: ScenarioContext) {
    this.#context = context
  }

  async run (): Promise<void> {
    const { options, target, recorder, signal } = this.#context
    let droppedAt: number | undefined
    while (!signal.aborted) {
      const connection = await connectWithBackoff(target, recorder, options.backoffMs, signal, droppedAt)
      if (connection === undefined) return
      this.#context.reportWelcome(connection.welcome.limits?.messagesPerSecond)
      this.#connection = connection
      await Promise.race([pause(randomBetween(options.holdMs), signal), connection.closed])
      if (connection.closedAt !== undefined && !connection.requestedClose) {
        droppedAt = connection.closedAt
      } else {
        droppedAt = undefined
        await connection.close()
      }
    }
  }

  async stop (): Promise<void> {
    await this.#connection?.close()
  }
}
