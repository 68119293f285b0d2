import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import type { TestContext } from 'node:test'

/** A port nothing listens on right now. */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** A redis-server of the test's own, on loopback, that the test may kill and start again. */
export interface TestRedis {
  port: number
  url: string
  /** Starts it (again) on the same port, with nothing kept from before. */
  start: () => Promise<void>
  /** Kills it (SIGKILL by default, as a crash would). */
  stop: (signal?: NodeJS.Signals) => Promise<void>
}

export async function startRedis (t: Pick<TestContext, 'after'>, options: { started?: boolean } = {}): Promise<TestRedis> {
  const port = await freePort()
  let server: ChildProcess | undefined
  const redis: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start () {
      const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
      server = child
      let output = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${output}`)), 10_000)
        child.once('error', (err) => {
          clearTimeout(timer)
          reject(new Error(`redis-server could not run (scripts/install-system-deps.sh installs it): ${err.message}`))
        })
        child.stdout!.on('data', (chunk: Buffer) => {
          output += chunk.toString()
          if (output.includes('Ready to accept connections')) {
            clearTimeout(timer)
            resolve()
          }
        })
      })
    },
    async stop (signal = 'SIGKILL') {
      const child = server
      server = undefined
      if (child === undefined || child.exitCode !== null) return
      child.kill(signal)
      await once(child, 'exit')
    }
  }
  t.after(() => redis.stop())
  if (options.started !== false) await redis.start()
  return redis
}
