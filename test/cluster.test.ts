import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { startAppProcess, type AppProcess } from './helpers/app-process.js'
import { runProgram, waitForHttp } from './helpers/load-balancer.js'
import { freePort, startRedis } from './helpers/redis.js'
import { ResumingSubscriber, Speaker } from './helpers/resuming-client.js'

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

  const subscribers = Array.from({ length: SUBSCRIBERS }, () => new ResumingSubscriber(`ws://${lb}/ws`, TOPIC))
  await Promise.all(subscribers.map(async (subscriber) => await subscriber.start()))
  const speakers = [new Speaker(`ws://${lb}/ws`, 'proof', 20), new Speaker(`ws://${lb}/ws`, 'proof', 20)]
  t.after(() => {
    for (const client of [...subscribers, ...speakers]) client.stop()
  })
  for (const speaker of speakers) speaker.start()
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
  for (const speaker of speakers) speaker.stop()

  const admin = new Redis(redis.url)
  t.after(() => admin.disconnect())
  const stream = (await admin.xrange(`frt:{${TOPIC}}:stream`, '-', '+')).map(([id]) => id)
  const latest = stream.at(-1)
  const deadline = Date.now() + 15_000
  while (subscribers.some((subscriber) => subscriber.last !== latest)) {
    if (Date.now() > deadline) break
    await sleep(50)
  }

  const published = stream.length
  t.diagnostic(`published ${published} messages (${speakers.map((s) => `${s.sent} sent, ${s.acknowledged} acknowledged`).join('; ')})`)
  for (const [index, subscriber] of subscribers.entries()) {
    t.diagnostic(`subscriber ${index + 1}: received ${subscriber.accepted.length}, duplicates dropped ${subscriber.duplicates}, reconnects ${subscriber.reconnects}, recovered ${subscriber.recoveries.filter(Boolean).length}/${subscriber.recoveries.length}`)
  }
  assert.ok(published > 100, `a real broadcast: ${published} messages`)
  let reconnects = 0
  for (const subscriber of subscribers) {
    assert.deepEqual(subscriber.accepted, stream, 'every message exactly once, in order')
    assert.ok(subscriber.recoveries.every(Boolean), 'every resume recovered the whole gap')
    reconnects += subscriber.reconnects
  }
  assert.ok(reconnects >= SUBSCRIBERS, `clients were moved between nodes (${reconnects} reconnects)`)
})
