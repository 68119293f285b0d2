import type { Options } from '../args.js'
import type { Target } from '../connection.js'
import type { FromWorker } from '../messages.js'
import type { Recorder } from '../recorder.js'

/** What a scenario gets inside a worker thread. */
export interface ScenarioContext {
  options: Options
  target: Target
  recorder: Recorder
  /** This worker's position among `count`, to take its share of connections and rates. */
  index: number
  count: number
  runId: string
  /** Resolves when every worker finished its setup: the load starts for all at once. */
  go: Promise<void>
  /** Aborts when the run stops: loops end, pauses return early. */
  signal: AbortSignal
  post: (message: FromWorker) => void
  /** Tells the main thread the route's budget, once per worker. */
  reportWelcome: (messagesPerSecond: number | undefined) => void
}

export interface Scenario {
  /** Opens what must be open before `go`; resolves when ready. */
  setup: () => Promise<void>
  /** Called after the signal aborted: finish in-flight work (bounded), close every socket. */
  finish: () => Promise<void>
}

export type ScenarioFactory = (context: ScenarioContext) => Scenario
