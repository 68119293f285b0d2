import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { startAppProcess, type AppProcess } from '../helpers/app-process.js'
import { runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { WebSocket } from 'ws'
import type { ChatRoute } from '../../app/chat-route.js'
import { RealtimeClient } from '../../plugin/client/index.js'

const TOPIC = 'room:proof'
const SUBSCRIBERS = 6

test('3 nodes behind the real HAProxy and a real Redis: rolling restarts and a SIGKILL lose nothing, every client gets every message once, in order', async (t) => {
  const redis = await startRedis(t)
  const ports = await Promise.all([freePort(), freePort(), freePort()])
  const env = (port: number): NodeJS.ProcessEnv => ({
    PORT: String(port),
    REDIS_URL: redis.url,
    BROKER_HISTORY_SIZE: '100000',
    WS_DRAIN_MS: '600',
    // The app says it listens at info level.
    LOG_LEVEL: 'info'
  })
  const nodes: AppProcess[] = await Promise.all(ports.map(async (port) => await startAppProcess(t, env(port))))

  const lbPort = await freePort()
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
    LB_BIND: `127.0.0.1:${lbPort}`,
    APP1_ADDR: `127.0.0.1:${ports[0]}`,
    APP2_ADDR: `127.0.0.1:${ports[1]}`,
    APP3_ADDR: `127.0.0.1:${ports[2]}`
  })
  const lb = `127.0.0.1:${lbPort}`
  await waitForHttp(`http://${lb}/health/ready`)
  // Until its health checks see every node up, HAProxy would send everyone to the first.
  await sleep(2_500)

  // The shipped client, as an application would use it: it reconnects, resumes from its last
  // offset and drops duplicates by itself; the test only records what reaches the handler.
  const connect = (): RealtimeClient<ChatRoute> =>
    new RealtimeClient<ChatRoute>(`ws://${lb}/ws`, { WebSocket, backoff: { minMs: 50, maxMs: 500 } })
  const subscribers = Array.from({ length: SUBSCRIBERS }, () => ({ client: connect(), offsets: [] as string[], reconnects: 0, recoveryFailures: 0 }))
  for (const subscriber of subscribers) {
    subscriber.client.onState((state) => { if (state === 'reconnecting') subscriber.reconnects++ })
  }
  await Promise.all(subscribers.map(async (subscriber) => await subscriber.client.subscribe(TOPIC, (event) => subscriber.offsets.push(event.offset), {
    onRecoveryFailed: () => { subscriber.recoveryFailures++ }
  })))
  const speakers = [0, 1].map(() => ({ client: connect(), sent: 0, acknowledged: 0, timer: undefined as NodeJS.Timeout | undefined }))
  for (const speaker of speakers) {
    speaker.timer = setInterval(() => {
      if (speaker.client.state !== 'open') return
      speaker.sent++
      speaker.client.request('say', { room: 'proof', text: `message ${speaker.sent}` }).then(() => { speaker.acknowledged++ }, () => {})
    }, 20)
  }
  const stopSpeakers = (): void => { for (const speaker of speakers) clearInterval(speaker.timer) }
  t.after(() => {
    stopSpeakers()
    for (const client of [...subscribers, ...speakers].map((entry) => entry.client)) client.close()
  })
  await sleep(1_000)

  // A rolling deploy: each node in turn drains (1012) and comes back on the same port.
  for (const index of [0, 1, 2]) {
    const node = nodes[index]!
    node.child.kill('SIGTERM')
    const [code] = await once(node.child, 'exit')
    assert.equal(code, 0, `node ${index + 1} drained and exited cleanly`)
    nodes[index] = await startAppProcess(t, env(ports[index]!))
    await sleep(2_500)
  }
  // And a crash in the middle of the broadcast.
  nodes[1]!.child.kill('SIGKILL')
  await once(nodes[1]!.child, 'exit')
  await sleep(1_000)
  nodes[1] = await startAppProcess(t, env(ports[1]!))
  await sleep(1_500)
  stopSpeakers()
  // Answers still in flight are counted before the stream is read.
  await sleep(500)

  const admin = new Redis(redis.url)
  t.after(() => admin.disconnect())
  const stream = (await admin.xrange(`frt:{${TOPIC}}:stream`, '-', '+')).map(([id]) => id)
  const latest = stream.at(-1)
  const deadline = Date.now() + 15_000
  while (subscribers.some((subscriber) => subscriber.offsets.at(-1) !== latest)) {
    if (Date.now() > deadline) break
    await sleep(50)
  }

  const published = stream.length
  t.diagnostic(`published ${published} messages (${speakers.map((speaker) => `${speaker.sent} sent, ${speaker.acknowledged} acknowledged`).join('; ')})`)
  for (const [index, subscriber] of subscribers.entries()) {
    t.diagnostic(`subscriber ${index + 1}: received ${subscriber.offsets.length}, reconnect attempts ${subscriber.reconnects}, failed recoveries ${subscriber.recoveryFailures}`)
  }
  assert.ok(published > 100, `a real broadcast: ${published} messages`)
  let reconnects = 0
  for (const subscriber of subscribers) {
    assert.deepEqual(subscriber.offsets, stream, 'every message exactly once, in order')
    assert.equal(subscriber.recoveryFailures, 0, 'every resume recovered the whole gap')
    reconnects += subscriber.reconnects
  }
  assert.ok(reconnects >= SUBSCRIBERS, `clients were moved between nodes (${reconnects} reconnects)`)
})
