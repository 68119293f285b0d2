import { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import realtime, { type RealtimeOptions } from '../../plugin/index.js'

export interface TestServer {
  app: FastifyInstance
  /** `http://127.0.0.1:<port>` */
  httpUrl: string
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string
  /** Every log line the app wrote, parsed. */
  logs: Array<Record<string, unknown>>
}

/** A stream that keeps the app's JSON log lines for assertions. */
export function logCollector (): { stream: Writable, logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logs.push(JSON.parse(line))
      callback()
    }
  })
  return { stream, logs }
}

/**
 * Starts a Fastify app with the plugin on an ephemeral loopback port; `declare` adds routes.
 * The app is closed when the test ends, with a short drain unless the test sets one: clients
 * still open then would otherwise hold each test for half the default drainMs.
 */
export async function startServer (
  t: TestContext,
  declare: (app: FastifyInstance) => void | Promise<void>,
  options: RealtimeOptions = {}
): Promise<TestServer> {
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'debug', stream } })
  await app.register(realtime, { drainMs: 50, ...options })
  await declare(app)
  return await listen(t, app, logs)
}

/** Listens on loopback (an ephemeral port unless given one) and closes the app after the test. */
export async function listen (t: TestContext, app: FastifyInstance, logs: Array<Record<string, unknown>> = [], port = 0): Promise<TestServer> {
  await app.listen({ port, host: '127.0.0.1' })
  t.after(() => app.close())
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('expected a TCP address')
  return { app, httpUrl: `http://127.0.0.1:${address.port}`, wsUrl: `ws://127.0.0.1:${address.port}`, logs }
}

/** Waits until `predicate` holds, polling; fails after `timeoutMs`. */
export async function eventually (predicate: () => boolean, timeoutMs = 2_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * `promise`, or a failure naming `what` after `timeoutMs`: a broken guard must fail a test, not
 * hang it. The timer is cleared so it cannot hold the process.
 */
export async function within<T> (promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}
