import type { RealtimeConnection } from '../connection.js'
import { pause, shareOf } from '../pacing.js'
import { connectWithBackoff } from '../session.js'
import type { Scenario, ScenarioContext } from './context.js'

/**
 * Ramps up to `--connections` open connections, `--concurrency` handshakes at a time and at most
 * `--connect-rate` new ones per second, then holds them (the run's `--duration`) without
 * traffic. A failed handshake is retried with backoff: the question is how fast and how surely
 * the server reaches N, and the failures along the way are the answer's other half.
 */
export function connectScenario (context: ScenarioContext): Scenario {
  const { options, index, count, target, recorder, signal } = context
  const quota = shareOf(options.connections, index, count)
  const lanes = Math.min(quota, Math.max(1, shareOf(options.concurrency, index, count)))
  const workerRate = options.connectRate === undefined ? undefined : options.connectRate * quota / options.connections
  const open: RealtimeConnection[] = []

  return {
    async setup () {
      const startedAt = performance.now()
      let next = 0
      const lane = async (): Promise<void> => {
        for (let slot = next++; slot < quota && !signal.aborted; slot = next++) {
          if (workerRate !== undefined) await pause(startedAt + slot * 1_000 / workerRate - performance.now(), signal)
          const connection = await connectWithBackoff(target, recorder, options.backoffMs, signal)
          if (connection === undefined) return
          context.reportWelcome(connection.welcome.limits?.messagesPerSecond)
          open.push(connection)
        }
      }
      await Promise.all(Array.from({ length: lanes }, lane))
    },
    async finish () {
      await Promise.all(open.map(async (connection) => await connection.close()))
    }
  }
}
