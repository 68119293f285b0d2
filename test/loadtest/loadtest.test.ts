import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../helpers/app.js'
import { LOADED_APP_ENV, readReport, runCli, tempDir } from '../helpers/loadtest-cli.js'

test('bad flags exit 2 with the reason and the usage, before connecting anywhere', async () => {
  const run = await runCli(['echo', '--rate', '10', '--pipeline', '2'])
  assert.equal(run.code, 2)
  assert.match(run.stderr, /--pipeline \(closed loop\) and --rate \(fixed rate\) exclude each other/)
  assert.match(run.stderr, /Usage: fastify-realtime-loadtest <scenario>/)
  assert.equal(run.stdout, '')
  const unknown = await runCli(['stampede'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown scenario "stampede"/)
})

test('echo: replies counted and timed, JSON and self-contained HTML reports; a threshold that cannot hold exits 1 and is named', async (t) => {
  const { wsUrl } = await startApp(t, LOADED_APP_ENV)
  const dir = await tempDir(t)
  const run = await runCli(['echo', '--url', `${wsUrl}/ws`, '--duration', '1500ms', '--connections', '4', '--pipeline', '2', '--workers', '2',
    '--threshold', 'p99<0.001ms', '--threshold', 'errors<1%', '--json', join(dir, 'report.json'), '--html', join(dir, 'report.html')])
  assert.equal(run.code, 1, run.stderr)
  assert.match(run.stderr, /thresholds failed: p99<0\.001ms\n/, 'only the failed threshold is named')
  assert.match(run.stdout, /✗ FAIL {2}p99<0\.001ms/)
  assert.match(run.stdout, /✓ pass {2}errors<1%/)

  const report = await readReport(join(dir, 'report.json'))
  assert.equal(report.tool, 'fastify-realtime-loadtest')
  assert.equal(report.scenario, 'echo')
  assert.equal(report.workers, 2)
  assert.ok(report.measuredSeconds >= 1.4 && report.measuredSeconds < 3, `measured ${report.measuredSeconds}s`)
  const replies = report.counters.replies ?? 0
  assert.ok(replies > 200, `${replies} replies`)
  assert.equal(report.counters.requests, replies, 'every request answered by the end')
  assert.equal(report.latency.reply?.count, replies)
  assert.ok(report.metrics.p50! > 0 && report.metrics.p50! <= report.metrics.p99! && report.metrics.p99! <= report.metrics.max!)
  assert.ok(report.metrics.p99! < 1_000, 'loopback replies take well under a second')
  assert.ok(Math.abs(report.metrics.rate! - replies / report.measuredSeconds) < 1e-6 * replies)
  assert.equal(report.metrics.errors, 0)
  assert.equal(report.metrics.connections, 4)
  assert.equal(report.latency.connect?.count, 4)
  assert.ok(report.timeline.length >= 1 && report.timeline.every((point) => point.throughput >= 0))
  assert.equal(report.timeline.reduce((sum, point) => sum + point.throughput, 0), replies, 'the timeline adds up to the total')
  assert.deepEqual(report.thresholds.map((threshold) => [threshold.expression, threshold.passed]), [['p99<0.001ms', false], ['errors<1%', true]])
  assert.equal(report.passed, false)

  const html = await readFile(join(dir, 'report.html'), 'utf8')
  assert.match(html, /^<!doctype html>/)
  assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i, 'nothing is fetched')
  assert.doesNotMatch(html, /<script|<link|@import|url\(/i)
  assert.ok((html.match(/<svg/g) ?? []).length >= 2, 'latency and throughput charts')
  assert.match(html, /<polyline|<circle/)
  assert.ok(html.includes(replies.toLocaleString('en-US')), 'the reply count is in the page')
  assert.match(html, /p99&lt;0\.001ms/)
})

test('echo: $error replies are counted as errors by code, and a threshold that holds exits 0', async (t) => {
  const { wsUrl } = await startApp(t, LOADED_APP_ENV)
  const dir = await tempDir(t)
  const run = await runCli(['echo', '--url', `${wsUrl}/ws`, '--duration', '1s', '--connections', '2', '--rate', '200', '--type', 'no-such-type',
    '--threshold', 'connect_p99<5s', '--json', join(dir, 'report.json')])
  assert.equal(run.code, 0, run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  const sent = report.counters.requests ?? 0
  assert.ok(sent >= 150 && sent <= 220, `about 200 sent at 200/s for 1 s, got ${sent}`)
  assert.equal(report.errorsByCode.UNKNOWN_TYPE, sent)
  assert.equal(report.metrics.errors, 1)
  assert.equal(report.counters.replies, undefined)
  assert.match(run.stdout, /errors by code\s+UNKNOWN_TYPE ×/)
})

test('echo: SIGINT stops the run early and still prints what was measured', async (t) => {
  const { wsUrl } = await startApp(t, LOADED_APP_ENV)
  const run = await runCli(['echo', '--url', `${wsUrl}/ws`, '--duration', '60s', '--connections', '2'], { interruptAfterMs: 3_000 })
  assert.equal(run.code, 0, run.stderr)
  assert.ok(run.elapsedMs < 15_000, `stopped after ${Math.round(run.elapsedMs)} ms`)
  assert.match(run.stdout, /INTERRUPTED/)
  assert.match(run.stdout, /reply latency\s+p50 \d/)
  assert.match(run.stdout, /interrupted \(SIGINT\)/)
})

test('fanout: N subscribers receive N × the acknowledged publishes, none lost, none twice, in order', async (t) => {
  const { wsUrl } = await startApp(t, LOADED_APP_ENV)
  const dir = await tempDir(t)
  const subscribers = 20
  const run = await runCli(['fanout', '--url', `${wsUrl}/ws`, '--duration', '1500ms', '--subscribers', String(subscribers), '--publishers', '2', '--rate', '40',
    '--settle', '1s', '--workers', '2', '--threshold', 'loss==0', '--threshold', 'p99<2s', '--json', join(dir, 'report.json')])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  const fanout = report.fanout!
  assert.ok(fanout.acknowledged >= 40, `${fanout.acknowledged} publishes acknowledged`)
  assert.equal(fanout.publishes, fanout.acknowledged)
  assert.equal(fanout.expected, fanout.acknowledged * subscribers)
  assert.equal(fanout.received, fanout.expected)
  assert.deepEqual([fanout.lost, fanout.duplicates, fanout.outOfOrder], [0, 0, 0])
  assert.equal(report.metrics.loss, 0)
  assert.equal(report.latency.delivery?.count, fanout.received)
  assert.ok(report.metrics.p50! > 0)
  assert.equal(report.metrics.connections, subscribers + 2)
})

test('connect: reaches N connections, times every handshake and reports the ramp rate', async (t) => {
  const { wsUrl, app } = await startApp(t, LOADED_APP_ENV)
  const dir = await tempDir(t)
  let peak = 0
  const watcher = setInterval(() => { peak = Math.max(peak, app.realtime.connectionCount) }, 20)
  t.after(() => clearInterval(watcher))
  const run = await runCli(['connect', '--url', `${wsUrl}/ws`, '--connections', '150', '--concurrency', '20', '--duration', '1s', '--json', join(dir, 'report.json')])
  assert.equal(run.code, 0, run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  assert.equal(report.metrics.connections, 150)
  assert.equal(peak, 150, 'the server saw them all at once')
  assert.equal(report.latency.connect?.count, 150)
  assert.ok(report.rampSeconds! > 0)
  assert.ok(Math.abs(report.metrics.rate! - 150 / report.rampSeconds!) < 1e-6)
  assert.equal(report.metrics.connect_errors, 0)
  assert.match(run.stdout, /connections\/s during the ramp/)
  assert.equal(app.realtime.connectionCount, 0, 'every connection closed at the end')
})

test('churn: a node drained mid-run (1012) and restarted on its port: users reconnect and the reconnect time is recorded', async (t) => {
  const first = await startApp(t, LOADED_APP_ENV)
  const port = Number(new URL(first.httpUrl).port)
  const dir = await tempDir(t)
  const running = runCli(['churn', '--url', `${first.wsUrl}/ws`, '--duration', '4s', '--connections', '10', '--hold', '300ms-800ms',
    '--backoff', '50ms-300ms', '--json', join(dir, 'report.json')])
  await sleep(2_000)
  await first.app.realtime.drain()
  await first.app.close()
  await sleep(300)
  await startApp(t, LOADED_APP_ENV, { port })
  const run = await running
  assert.equal(run.code, 0, run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  assert.ok((report.closesByCode['1012'] ?? 0) >= 1, `closes ${JSON.stringify(report.closesByCode)}`)
  assert.ok((report.counters.reconnects ?? 0) >= 1)
  assert.ok(report.latency.reconnect!.count >= 1)
  assert.ok(report.latency.reconnect!.min >= 1, 'a reconnect waited for the restart')
  assert.ok((report.counters.connect_failures ?? 0) >= 1, 'attempts while the node was down failed')
  assert.ok((report.counters.client_closes ?? 0) >= 10, 'users closed and came back by themselves too')
  assert.ok(report.metrics.rate! > 0)
  assert.match(run.stdout, /reconnect time\s+p50/)
})

test('soak: per-interval rows with the server\'s memory from --metrics-url, and drift between first and last', async (t) => {
  const { wsUrl, httpUrl } = await startApp(t, LOADED_APP_ENV)
  const dir = await tempDir(t)
  const run = await runCli(['soak', '--url', `${wsUrl}/ws`, '--duration', '3s', '--interval', '1s', '--rate', '100', '--connections', '2',
    '--metrics-url', `${httpUrl}/metrics`, '--threshold', 'memory_growth<500MB', '--json', join(dir, 'report.json')])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  const intervals = report.intervals!
  assert.ok(intervals.length >= 3, `${intervals.length} intervals`)
  for (const row of intervals.slice(0, 3)) {
    assert.ok(row.samples > 0 && row.p50! > 0 && row.throughput > 50, JSON.stringify(row))
    assert.ok(row.memoryBytes! > 10_000_000, 'the app\'s resident memory, in bytes')
  }
  // Drift is the last whole interval against the first; growth, the last memory sample against the first.
  const memory = report.memory!
  assert.ok(memory.length >= 3)
  assert.equal(report.metrics.memory_growth, memory.at(-1)!.bytes - memory[0]!.bytes)
  const whole = intervals.filter((row, i) => i < intervals.length - 1 || row.endSecond - row.startSecond >= 0.5)
  assert.ok(Math.abs(report.metrics.p99_drift! - (whole.at(-1)!.p99! / whole[0]!.p99! - 1)) < 1e-9)
  assert.match(run.stdout, /server RSS/)
  assert.match(run.stdout, /drift \(last vs first\)/)
})
