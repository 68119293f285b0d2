import { randomBytes } from 'node:crypto'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { Aggregate } from './aggregate.js'
import type { Options } from './args.js'
import { now } from './clock.js'
import type { FromWorker, ToWorker, WorkerSetup } from './messages.js'
import { PROFILES } from './profile.js'
import { residentMemory } from './prometheus.js'

/** Margin past the workers' own bounded waits before a stuck worker is terminated. */
const STOP_MARGIN_MS = 5_000
/** How long connections may take to open before the load starts without the missing ones. */
const MIN_SETUP_MS = 10_000

export interface MemorySample {
  /** Seconds since measuring started. */
  second: number
  bytes: number
}

export interface RunResult {
  options: Options
  runId: string
  workers: number
  /** Epoch ms. */
  startedAt: number
  /** Epoch ms from which operations count (after setup and warmup; connect: the start). */
  measureFrom: number
  measuredMs: number
  /** connect: from the start until every connection was open (or the ramp gave up). */
  rampMs: number | undefined
  aggregate: Aggregate
  memory: MemorySample[]
  /** The smallest per-connection budget any `$welcome` announced. */
  messagesPerSecond: number | undefined
  warnings: string[]
  interrupted: boolean
  /** Why the run could not go on (a refused subscription, a crashed worker). */
  fatal: string | undefined
}

export interface RunHooks {
  /** Called once a second while the load runs, for the progress line. */
  onSecond?: (state: { elapsedMs: number, totalMs: number, aggregate: Aggregate, phase: 'setup' | 'warmup' | 'measuring' | 'stopping' }) => void
}

/** Under tsx the CLI runs from `.ts` sources, once built from `.js`: the worker is its sibling either way. */
function startWorker (setup: WorkerSetup): Worker {
  const extension = extname(fileURLToPath(import.meta.url))
  const file = new URL(`./worker${extension}`, import.meta.url)
  if (extension !== '.ts') return new Worker(file, { workerData: setup })
  // Node does not pass the parent's loader hooks (tsx's) on to worker threads, whatever
  // execArgv says: the worker registers them itself before importing the TypeScript source.
  const tsx = import.meta.resolve('tsx/esm/api')
  return new Worker(`import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(file.href)}) })`, { eval: true, workerData: setup })
}

/**
 * Runs one scenario: starts the worker threads, waits until they have set up (connections open,
 * subscriptions live), starts the load in all of them at once, stops after the duration or on
 * SIGINT, and merges what they measured.
 */
export async function runLoadTest (options: Options, hooks: RunHooks = {}): Promise<RunResult> {
  const profile = PROFILES[options.scenario]
  const units = options.scenario === 'fanout' ? options.subscribers + options.publishers : options.connections
  const workerCount = Math.max(1, Math.min(options.workers, units))
  const runId = randomBytes(4).toString('hex')
  const startedAt = now()
  const aggregate = new Aggregate(profile, workerCount, startedAt, options.scenario === 'soak' ? options.intervalMs : undefined)
  const result: RunResult = {
    options,
    runId,
    workers: workerCount,
    startedAt,
    measureFrom: startedAt,
    measuredMs: 0,
    rampMs: undefined,
    aggregate,
    memory: [],
    messagesPerSecond: undefined,
    warnings: [],
    interrupted: false,
    fatal: undefined
  }

  let phase: 'setup' | 'warmup' | 'measuring' | 'stopping' = 'setup'
  let ready = 0
  let done = 0
  let stopRequested: () => void = () => {}
  const stopped = new Promise<void>((resolve) => { stopRequested = resolve })
  let allReady: () => void = () => {}
  const setupDone = new Promise<void>((resolve) => { allReady = resolve })
  let allDone: () => void = () => {}
  const workersDone = new Promise<void>((resolve) => { allDone = resolve })

  const workers = Array.from({ length: workerCount }, (_, index) => {
    const setup: WorkerSetup = { options, index, count: workerCount, runId, measureFrom: startedAt }
    const worker = startWorker(setup)
    let exited = false
    const exit = (): void => {
      if (exited) return
      exited = true
      if (++done === workerCount) allDone()
    }
    worker.on('message', (message: FromWorker) => {
      switch (message.kind) {
        case 'tick':
          aggregate.add(index, message)
          break
        case 'ready':
          if (++ready === workerCount) allReady()
          break
        case 'welcome':
          if (message.messagesPerSecond !== undefined) result.messagesPerSecond = Math.min(result.messagesPerSecond ?? Number.POSITIVE_INFINITY, message.messagesPerSecond)
          break
        case 'done':
          exit()
          break
        case 'fatal':
          result.fatal ??= message.message
          stopRequested()
          break
      }
    })
    worker.on('error', (err) => {
      result.fatal ??= `worker ${index} crashed: ${err.stack ?? err.message}`
      stopRequested()
    })
    worker.on('exit', exit)
    return worker
  })
  const broadcast = (message: ToWorker): void => { for (const worker of workers) worker.postMessage(message) }

  const onSigint = (): void => {
    if (result.interrupted) process.exit(130)
    result.interrupted = true
    stopRequested()
  }
  process.on('SIGINT', onSigint)

  const timers: NodeJS.Timeout[] = []
  let goAt = startedAt
  const progress = setInterval(() => {
    const elapsedMs = now() - startedAt
    const totalMs = (goAt - startedAt) + (options.scenario === 'connect' ? 0 : options.warmupMs) + options.durationMs
    hooks.onSecond?.({ elapsedMs, totalMs, aggregate, phase })
  }, 1_000)

  const setupLimitMs = options.scenario === 'connect'
    ? Math.max(options.durationMs, options.connectRate === undefined ? 0 : 2 * 1_000 * options.connections / options.connectRate) + options.timeoutMs
    : Math.max(MIN_SETUP_MS, 3 * options.timeoutMs)
  const setupOutcome = await Promise.race([
    setupDone.then(() => 'ready' as const),
    stopped.then(() => 'stopped' as const),
    new Promise<'late'>((resolve) => timers.push(setTimeout(() => resolve('late'), setupLimitMs)))
  ])
  if (setupOutcome === 'late') {
    if (aggregate.open === 0 && options.scenario !== 'churn') {
      const failures = Object.entries(aggregate.counters).filter(([name]) => name.startsWith('connect_failures:')).map(([name, n]) => `${name.slice(17)} ×${n}`)
      result.fatal ??= `no connection opened within ${Math.round(setupLimitMs / 1_000)}s to ${options.url}${failures.length > 0 ? ` (${failures.join(', ')})` : ''}`
    } else {
      result.warnings.push(`setup did not finish within ${Math.round(setupLimitMs / 1_000)}s: the load started with ${aggregate.open} connections open`)
    }
  }

  if (result.fatal === undefined && !result.interrupted) {
    goAt = now()
    if (options.scenario === 'connect') {
      result.rampMs = goAt - startedAt
    } else {
      result.measureFrom = goAt + options.warmupMs
      aggregate.origin = result.measureFrom
    }
    broadcast({ kind: 'go', measureFrom: result.measureFrom })
    phase = options.warmupMs > 0 && options.scenario !== 'connect' ? 'warmup' : 'measuring'
    if (phase === 'warmup') timers.push(setTimeout(() => { phase = 'measuring' }, options.warmupMs))
    const endAt = (options.scenario === 'connect' ? goAt : result.measureFrom) + options.durationMs
    timers.push(setTimeout(stopRequested, endAt - now()))
    if (options.metricsUrl !== undefined) sampleMemory(options.metricsUrl, options.intervalMs, result, timers)
    await stopped
  }

  const measured = phase !== 'setup'
  phase = 'stopping'
  result.measuredMs = measured ? Math.max(0, now() - result.measureFrom) : 0
  for (const timer of timers) clearTimeout(timer)
  broadcast({ kind: 'stop' })
  const stopLimit = options.timeoutMs + options.settleMs + STOP_MARGIN_MS
  const finished = await Promise.race([workersDone.then(() => true), new Promise<false>((resolve) => timers.push(setTimeout(() => resolve(false), stopLimit)))])
  if (!finished) result.warnings.push(`${workerCount - done} worker(s) did not stop within ${Math.round(stopLimit / 1_000)}s and were terminated`)
  for (const timer of timers) clearTimeout(timer)
  clearInterval(progress)
  await Promise.all(workers.map(async (worker) => await worker.terminate()))
  process.off('SIGINT', onSigint)
  if (options.metricsUrl !== undefined && result.fatal === undefined) {
    const bytes = await residentMemory(options.metricsUrl)
    if (bytes !== undefined) result.memory.push({ second: result.measuredMs / 1_000, bytes })
  }
  aggregate.finish(result.measuredMs / 1_000)
  for (const row of aggregate.intervals) {
    const sample = result.memory.findLast((entry) => entry.second <= row.endSecond + 1)
    if (sample !== undefined && sample.second > row.startSecond) row.memoryBytes = sample.bytes
  }
  return result
}

/** A sample at the start of measuring, then one per interval: memory drift is last − first. */
function sampleMemory (url: string, intervalMs: number, result: RunResult, timers: NodeJS.Timeout[]): void {
  const sample = async (): Promise<void> => {
    const bytes = await residentMemory(url)
    if (bytes !== undefined) result.memory.push({ second: Math.max(0, (now() - result.measureFrom) / 1_000), bytes })
    else if (!result.warnings.some((warning) => warning.startsWith('--metrics-url'))) result.warnings.push(`--metrics-url ${url} gave no process_resident_memory_bytes`)
  }
  timers.push(setTimeout(() => {
    sample()
    timers.push(setInterval(() => { sample() }, intervalMs))
  }, Math.max(0, result.measureFrom - now())))
}
