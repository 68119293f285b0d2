import { setMaxListeners } from 'node:events'
import { parentPort, workerData } from 'node:worker_threads'
import type { FromWorker, ToWorker, WorkerSetup } from './messages.js'
import { Recorder } from './recorder.js'
import { SCENARIO_FACTORIES } from './scenarios/index.js'

/** Ticks are the unit of the timeline: one per second, per worker. */
const TICK_MS = 1_000

const setup = workerData as WorkerSetup
const port = parentPort
if (port === null) throw new Error('loadtest/worker runs as a worker thread of loadtest/cli')

const post = (message: FromWorker): void => port.postMessage(message)
const recorder = new Recorder(setup.measureFrom)
const stop = new AbortController()
// Every virtual user's pause listens to it: hundreds of listeners are the design, not a leak.
setMaxListeners(0, stop.signal)
let go: () => void = () => {}
const started = new Promise<void>((resolve) => { go = resolve })
let welcomeReported = false

const scenario = SCENARIO_FACTORIES[setup.options.scenario]({
  options: setup.options,
  target: { url: setup.options.url, headers: setup.options.headers, timeoutMs: setup.options.timeoutMs, insecure: setup.options.insecure, ca: setup.options.ca },
  recorder,
  index: setup.index,
  count: setup.count,
  runId: setup.runId,
  go: started,
  signal: stop.signal,
  post,
  reportWelcome (messagesPerSecond) {
    if (welcomeReported) return
    welcomeReported = true
    post({ kind: 'welcome', messagesPerSecond })
  }
})
const ticker = setInterval(() => post(recorder.tick()), TICK_MS)

port.on('message', (message: ToWorker) => {
  if (message.kind === 'go') {
    recorder.measureFrom = message.measureFrom
    go()
  } else if (message.kind === 'stop' && !stop.signal.aborted) {
    stop.abort()
    // A stop before `go` must still release whatever waits for it.
    go()
    scenario.finish().then(() => {
      clearInterval(ticker)
      post(recorder.tick())
      post({ kind: 'done' })
      port.close()
    }, (err: unknown) => post({ kind: 'fatal', message: String(err) }))
  }
})

scenario.setup().then(() => post({ kind: 'ready' }), (err: unknown) => post({ kind: 'fatal', message: `setup failed: ${String(err)}` }))
