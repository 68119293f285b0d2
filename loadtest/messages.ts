import type { Options } from './args.js'
import type { Tick } from './recorder.js'

/** What every worker is started with. */
export interface WorkerSetup {
  options: Options
  index: number
  count: number
  /** Names this run in fan-out markers, so events of other runs on the topic are told apart. */
  runId: string
  /** Epoch ms (shared clock) from which operations count; moved forward by `go` for the warmup. */
  measureFrom: number
}

export type ToWorker =
  | { kind: 'go', measureFrom: number }
  | { kind: 'stop' }

export type FromWorker =
  | Tick
  /** Setup is done: connections open (and subscribed) as the scenario needs before `go`. */
  | { kind: 'ready' }
  | { kind: 'welcome', messagesPerSecond: number | undefined }
  | { kind: 'done' }
  | { kind: 'fatal', message: string }
