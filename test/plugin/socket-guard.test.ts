import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import realtime, { DEFAULTS } from '../../plugin/index.js'
import { defaultMaxSockets, openFilesLimit } from '../../plugin/upgrade/socket-guard.js'
import { startAppProcess } from '../helpers/app-process.js'
import { TestClient } from '../helpers/client.js'
import { HalfOpenPeers } from '../helpers/half-open.js'
import { metricValue } from '../helpers/metrics.js'
import { echoRoute } from '../helpers/raw-peer.js'
import { eventually, listen, logCollector, startServer, within, type TestServer } from '../helpers/server.js'

const refused = async (server: TestServer, reason: string): Promise<number> =>
  await metricValue(server.app.realtime.metricsRegistry, 'ws_sockets_refused_total', { reason })

const refusalLines = (logs: Array<Record<string, unknown>>, reason: string): Array<Record<string, unknown>> =>
  logs.filter((line) => line.msg === 'ws.sockets_refused' && line.reason === reason)

function portOf (server: TestServer): number {
  return Number(new URL(server.httpUrl).port)
}

test('maxSockets: half-open sockets past the cap are refused, then evict each other, while a new client, /health/live and an open connection are served', async (t) => {
  const peers = new HalfOpenPeers(t)
  const server = await startServer(t, echoRoute, { maxSockets: 100 })
  const port = portOf(server)
  const bystander = await TestClient.connect(t, `${server.wsUrl}/ws`)

  // 200 at once: 99 fit beside the bystander, and none is old enough to make room for the rest.
  const first = await peers.flood(port, 200)
  await eventually(() => first.filter((peer) => peer.isClosed()).length === 101, 5_000, '101 refusals')
  assert.equal(await refused(server, 'capacity'), 101)
  assert.equal(await refused(server, 'evicted'), 0)

  await sleep(DEFAULTS.socketEvictionMinAgeMs + 100)
  // Now each newcomer takes the place of the oldest socket that never sent a request.
  const second = await peers.flood(port, 50)
  await eventually(() => first.filter((peer) => peer.isClosed()).length === 151, 5_000, '50 evictions')
  assert.equal(await refused(server, 'evicted'), 50)
  assert.ok(second.every((peer) => !peer.isClosed()), 'the newcomers stay')

  const live = await fetch(`${server.httpUrl}/health/live`)
  assert.equal(live.status, 200)
  const newcomer = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal(newcomer.welcome?.type, '$welcome')

  // The rest of the first wave is evicted, then (unless the machine is slow enough for the
  // second wave to age) the cap holds only sockets too young to evict, and newcomers are refused.
  const third = await peers.flood(port, 100)
  const flooded = [...first, ...second, ...third]
  // Every socket beyond the 99 that fitted at first evicted another or was refused.
  await eventually(() => flooded.filter((peer) => peer.isClosed()).length === 350 - 97, 5_000, '253 sockets closed')
  assert.ok(first.every((peer) => peer.isClosed()), 'the first wave is gone')
  const evicted = await refused(server, 'evicted')
  assert.ok(evicted >= 99, `${evicted} evicted`)
  assert.equal(evicted + await refused(server, 'capacity'), 253)
  assert.ok(flooded.every((peer) => !peer.isClosed() || peer.received() === ''), 'closed without a response')

  assert.equal((await bystander.request('$ping')).type, '$reply')
  assert.deepEqual((await newcomer.request('echo', { text: 'after the flood' })).data, { text: 'after the flood' })
  assert.equal((await fetch(`${server.httpUrl}/health/live`)).status, 200, 'the served HTTP socket was kept')

  // One line at the first refusal, then at most one a second with the count since the last.
  const total = (reason: string): number => refusalLines(server.logs, reason).reduce((sum, line) => sum + Number(line.count), 0)
  const capacity = await refused(server, 'capacity')
  await eventually(() => total('capacity') === capacity && total('evicted') === evicted, 3_000, 'every refusal logged in a count')
  for (const reason of ['capacity', 'evicted']) {
    const lines = refusalLines(server.logs, reason)
    assert.ok(lines.length < total(reason) / 10, `${lines.length} ${reason} lines for ${total(reason)} refusals`)
    const times = lines.map((line) => Number(line.time))
    assert.ok(times.slice(1).every((time, i) => time - (times[i] as number) >= 990), `${reason} lines a second apart: ${times.join(', ')}`)
    assert.ok(lines.every((line) => line.level === 40 && line.maxSockets === 100 && line.remoteAddress === '127.0.0.1'))
  }
})

test('headersTimeoutMs: a socket without a complete request head in time is closed without a response; one that completes it is served', async (t) => {
  const peers = new HalfOpenPeers(t)
  const server = await startServer(t, echoRoute, { headersTimeoutMs: 300, maxSockets: 0 })
  const port = portOf(server)
  assert.match(await server.app.realtime.metricsRegistry?.metrics() ?? '', /ws_sockets_refused_total\{reason="headers_timeout"\} 0/)
  assert.equal(server.app.server.headersTimeout, 300, 'Node\'s own check lowered to the deadline')

  const silent = await peers.open(port)
  const partial = await peers.open(port, 'GET /health/live HTTP/1.1\r\n')
  const slow = await peers.open(port, 'GET /health/live HTTP/1.1\r\n')
  await sleep(150)
  slow.socket.write('Host: localhost\r\n\r\n')

  // Within the deadline and one sweep (a tenth of it), with room for a busy machine.
  for (const peer of [silent, partial]) {
    const lifetime = await within(peer.closed, 2_000, 'a half-open socket closed') - peer.openedAt
    assert.ok(lifetime >= 290 && lifetime < 300 + 30 + 700, `closed after ${Math.round(lifetime)} ms`)
    assert.equal(peer.received(), '')
  }
  await eventually(() => slow.received().includes('\r\n\r\n'), 2_000, 'the slow request answered')
  assert.match(slow.received(), /^HTTP\/1\.1 200 /)
  await sleep(Math.max(0, slow.openedAt + 700 - performance.now()))
  assert.equal(slow.isClosed(), false, 'a socket that sent its request is not timed by the guard')
  assert.equal(await refused(server, 'headers_timeout'), 2)
  await eventually(() => refusalLines(server.logs, 'headers_timeout').reduce((sum, line) => sum + Number(line.count), 0) === 2, 2_000, 'logged')
})

test('headersTimeoutMs: later requests on a keep-alive socket get Node\'s headersTimeout, lowered to the deadline and never raised', async (t) => {
  const peers = new HalfOpenPeers(t)
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream }, http: { connectionsCheckingInterval: 50 } })
  await app.register(realtime, { drainMs: 50, headersTimeoutMs: 300 })
  const server = await listen(t, app, logs)
  const peer = await peers.open(portOf(server), 'GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await eventually(() => peer.received().includes('\r\n\r\n'), 2_000, 'the first answer')
  peer.socket.write('GET /health/live HTTP/1.1\r\n')
  const startedAt = performance.now()
  const lifetime = await within(peer.closed, 2_000, 'the keep-alive socket closed') - startedAt
  assert.ok(lifetime >= 250 && lifetime < 300 + 50 + 700, `second request timed out after ${Math.round(lifetime)} ms`)
  assert.match(peer.received(), /HTTP\/1\.1 408 /, 'Node answers this one itself')

  const lower = Fastify({ http: { headersTimeout: 200 } })
  t.after(() => lower.close())
  await lower.register(realtime, { headersTimeoutMs: 300 })
  await lower.ready()
  assert.equal(lower.server.headersTimeout, 200)
})

test('closing the app does not wait for sockets that never sent a request', async (t) => {
  const peers = new HalfOpenPeers(t)
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(realtime, { drainMs: 50 })
  const server = await listen(t, app, logs)
  const waiting = await peers.flood(portOf(server), 10)
  await sleep(50)
  const startedAt = performance.now()
  await within(app.close(), 2_000, 'app.close()')
  assert.ok(performance.now() - startedAt < 2_000, `closed in ${Math.round(performance.now() - startedAt)} ms`)
  await Promise.all(waiting.map(async (peer) => await peer.closed))
})

test('with metrics off the guard still refuses and logs', async (t) => {
  const peers = new HalfOpenPeers(t)
  const server = await startServer(t, echoRoute, { metrics: false, maxSockets: 5 })
  const sockets = await peers.flood(portOf(server), 12)
  await eventually(() => sockets.filter((peer) => peer.isClosed()).length === 7, 5_000, '7 refusals')
  await eventually(() => refusalLines(server.logs, 'capacity').reduce((sum, line) => sum + Number(line.count), 0) === 7, 3_000, 'logged')
})

test('the default cap is the open-files limit less max(10%, 64); none where the limit is unknown', () => {
  assert.equal(defaultMaxSockets(20_000), 18_000)
  assert.equal(defaultMaxSockets(1_024), 1_024 - 103)
  assert.equal(defaultMaxSockets(256), 192)
  assert.equal(defaultMaxSockets(40), 1)
  assert.equal(defaultMaxSockets(undefined), 0)

  const dir = mkdtempSync(join(tmpdir(), 'socket-guard-'))
  try {
    const limits = join(dir, 'limits')
    writeFileSync(limits, 'Limit                     Soft Limit           Hard Limit           Units\nMax open files            4096                 524288               files\n')
    assert.equal(openFilesLimit(limits), 4096)
    writeFileSync(limits, 'Max open files            unlimited            unlimited            files\n')
    assert.equal(openFilesLimit(limits), undefined)
    assert.equal(openFilesLimit(join(dir, 'missing')), undefined)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the example app under `ulimit -n 256` derives its cap and keeps answering /health/live through 400 half-open sockets', async (t) => {
  const peers = new HalfOpenPeers(t)
  const app = await startAppProcess(t, { LOG_LEVEL: 'info', WS_HEADERS_TIMEOUT_MS: '5000' }, { openFilesLimit: 256 })
  const port = Number(new URL(app.url).port)
  const sockets = await peers.flood(port, 400)
  await eventually(() => sockets.filter((peer) => peer.isClosed()).length >= 400 - 192, 10_000, 'refusals past the cap')
  // Without the cap the process sits at its limit here, and accepts nothing more.
  const descriptors = readdirSync(`/proc/${app.child.pid}/fd`).length
  assert.ok(descriptors < 256, `${descriptors} descriptors open`)
  await sleep(DEFAULTS.socketEvictionMinAgeMs + 100)
  const live = await fetch(`${app.url}/health/live`, { signal: AbortSignal.timeout(5_000) })
  assert.equal(live.status, 200)

  const lines = (): Array<Record<string, unknown>> => app.output().split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
  const guard = lines().find((line) => line.msg === 'ws.socket_guard')
  assert.equal(guard?.openFilesLimit, 256)
  assert.equal(guard?.maxSockets, 192)
  assert.equal(guard?.headersTimeoutMs, 5000)
  const metrics = await (await fetch(`${app.url}/metrics`)).text()
  const capacity = Number(/^ws_sockets_refused_total\{reason="capacity"\} (\d+)$/m.exec(metrics)?.[1])
  assert.ok(capacity >= 400 - 192, `capacity refusals: ${capacity}`)
  await eventually(() => lines().some((line) => line.msg === 'ws.sockets_refused' && line.reason === 'capacity'), 3_000, 'the refusals logged')
})

test('a maxSockets at or above the open-files limit is taken, with a warning that it cannot protect the process', async (t) => {
  const limit = openFilesLimit()
  assert.ok(limit !== undefined, 'this test runs where /proc/self/limits exists')
  const server = await startServer(t, echoRoute, { maxSockets: limit })
  const warning = server.logs.find((line) => line.msg === 'ws.max_sockets_above_limit')
  assert.deepEqual([warning?.level, warning?.maxSockets, warning?.openFilesLimit], [40, limit, limit])
  const below = await startServer(t, echoRoute, { maxSockets: limit - 1 })
  assert.ok(!below.logs.some((line) => line.msg === 'ws.max_sockets_above_limit'))
})
