import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { WebSocket } from 'ws'
import { RealtimeClient } from '../../plugin/client/index.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/server.js'

/** test/fixtures/counter-server.ts as a process of its own, listening on `port`. */
async function startCounterNode (t: TestContext, redisUrl: string, port: number, signedIn = true): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/counter-server.ts'], {
    env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port), SIGNED_IN: signedIn ? '1' : '0', COUNTER_DELAY_MS: '1500', IDEMPOTENCY_LEASE_MS: '1000' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the counter node did not start: ${output}`)), 20_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes(`port ${port}`)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`the counter node exited with ${String(code)}: ${output}`)))
  })
  return child
}

test('an idempotent request whose node is SIGKILLed mid-handler is sent again by the client to the next node, and its side effect happens once', async (t) => {
  const redis = await startRedis(t)
  const counter = new Redis(redis.url)
  t.after(() => counter.disconnect())
  const port = await freePort()
  const first = await startCounterNode(t, redis.url, port)
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, { WebSocket, backoff: { minMs: 20, maxMs: 200 }, getToken: () => 'ann' })
  t.after(() => client.close())
  await eventually(() => client.state === 'open', 5_000, 'the client to connect')
  const answer = client.request('increment', undefined, { idempotent: 'order-1', timeoutMs: 20_000 })
  // The handler waits 1.5 s before it counts: the node dies in the middle.
  await new Promise((resolve) => setTimeout(resolve, 500))
  first.kill('SIGKILL')
  await once(first, 'exit')
  assert.equal(await counter.get('counter:runs'), null, 'the dead node never counted')
  const second = await startCounterNode(t, redis.url, port)
  // Until the dead run's claim lapses (1 s) the new node says IN_PROGRESS; then it runs it.
  assert.deepEqual(await answer, { count: 1 })
  assert.equal(await counter.get('counter:runs'), '1')
  // Asked again under the same key: the stored answer, no second count.
  assert.deepEqual(await client.request('increment', undefined, { idempotent: 'order-1' }), { count: 1 })
  assert.equal(await counter.get('counter:runs'), '1')
  second.kill('SIGKILL')
})

test('an anonymous client does not send an idempotent request again after a drop: its key was its connection\'s, and the run may have finished', async (t) => {
  const redis = await startRedis(t)
  const counter = new Redis(redis.url)
  t.after(() => counter.disconnect())
  const port = await freePort()
  await startCounterNode(t, redis.url, port, false)
  const sockets: WebSocket[] = []
  // ws's own class, keeping each socket so the test can cut the connection under the client.
  class KeptWebSocket extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols)
      sockets.push(this)
    }
  }
  const client = new RealtimeClient(`ws://127.0.0.1:${port}/ws`, { WebSocket: KeptWebSocket, backoff: { minMs: 20, maxMs: 200 } })
  t.after(() => client.close())
  await eventually(() => client.state === 'open', 5_000, 'the client to connect')
  const answer = client.request('increment', undefined, { idempotent: 'order-1', timeoutMs: 10_000 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  sockets[0]!.terminate()
  await assert.rejects(answer, (err: Error & { code?: string }) => err.code === 'DISCONNECTED')
  // The node lived: the run finished once, and nothing ran it again.
  await eventually(() => client.state === 'open', 5_000, 'the client to reconnect')
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  assert.equal(await counter.get('counter:runs'), '1')
})
