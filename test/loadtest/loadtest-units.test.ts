import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { once } from 'node:events'
import type { RecordableHistogram } from 'node:perf_hooks'
import { parseOptions, UsageError } from '../../loadtest/args.js'
import { formatDuration, parseDuration, parseDurationRange } from '../../loadtest/duration.js'
import { mergeInto, newHistogram, recordMs, summarize } from '../../loadtest/histogram.js'
import { METRICS } from '../../loadtest/metrics.js'
import { shareOf } from '../../loadtest/pacing.js'
import { readSample } from '../../loadtest/prometheus.js'
import { SequenceWindow } from '../../loadtest/scenarios/fanout.js'
import { evaluateThresholds, parseThreshold, ThresholdError } from '../../loadtest/thresholds.js'

test('durations: every unit, fractions, ranges; a bare number or a reversed range is refused', () => {
  assert.equal(parseDuration('30s'), 30_000)
  assert.equal(parseDuration('5m'), 300_000)
  assert.equal(parseDuration('2h'), 7_200_000)
  assert.equal(parseDuration('250ms'), 250)
  assert.equal(parseDuration('1.5s'), 1_500)
  assert.equal(parseDuration('500us'), 0.5)
  assert.throws(() => parseDuration('30'), /unit/)
  assert.throws(() => parseDuration('thirty seconds'), /unit/)
  assert.deepEqual(parseDurationRange('500ms-3s'), [500, 3_000])
  assert.deepEqual(parseDurationRange('1s'), [1_000, 1_000])
  assert.throws(() => parseDurationRange('3s-500ms'), /below the minimum/)
  assert.equal(formatDuration(0), '0s')
  assert.equal(formatDuration(950), '950ms')
  assert.equal(formatDuration(12_500), '12.5s')
  assert.equal(formatDuration(330_000), '5m 30s')
  assert.equal(formatDuration(7_200_000), '2h')
})

test('thresholds: the grammar, units scaled to the metric\'s report unit, operators, and refusals', () => {
  assert.deepEqual(parseThreshold('p99<50ms', 'echo'), { expression: 'p99<50ms', metric: 'p99', operator: '<', value: 50 })
  assert.equal(parseThreshold('p99.9 < 0.2s', 'echo').value, 200)
  assert.equal(parseThreshold('p50<=800us', 'echo').value, 0.8)
  assert.equal(parseThreshold('p99<12', 'echo').value, 12, 'a bare number is in ms for a latency')
  assert.equal(parseThreshold('errors<1%', 'echo').value, 0.01)
  assert.equal(parseThreshold('errors<0.01', 'echo').value, 0.01)
  assert.deepEqual(parseThreshold('rate>=10000', 'echo'), { expression: 'rate>=10000', metric: 'rate', operator: '>=', value: 10_000 })
  assert.equal(parseThreshold('loss==0', 'fanout').operator, '==')
  assert.equal(parseThreshold('connect_p99<100ms', 'connect').metric, 'connect_p99')
  assert.equal(parseThreshold('reconnect_p99.9<5s', 'churn').value, 5_000)
  assert.equal(parseThreshold('memory_growth<50MB', 'soak').value, 50 * 1_048_576)
  assert.equal(parseThreshold('p99_drift<20%', 'soak').value, 0.2)

  assert.throws(() => parseThreshold('p99 50ms', 'echo'), ThresholdError)
  assert.throws(() => parseThreshold('latency<50ms', 'echo'), /no metric named "latency"/)
  assert.throws(() => parseThreshold('loss==0', 'echo'), /echo does not measure loss/)
  assert.throws(() => parseThreshold('errors<5ms', 'echo'), /errors takes % or no unit/)
  assert.throws(() => parseThreshold('rate>5%', 'echo'), ThresholdError)

  const metrics = { p99: 12, errors: 0, rate: 5_000, loss: undefined }
  const results = evaluateThresholds([
    parseThreshold('p99<50ms', 'echo'),
    parseThreshold('p99<10ms', 'echo'),
    parseThreshold('errors==0', 'echo'),
    parseThreshold('rate>10000', 'echo'),
    parseThreshold('p99!=12', 'echo')
  ], metrics)
  assert.deepEqual(results.map((result) => result.passed), [true, false, true, false, false])
  assert.equal(evaluateThresholds([parseThreshold('loss==0', 'fanout')], metrics)[0]?.passed, false, 'a metric without data fails its threshold')
})

test('every metric name is a valid threshold in the scenarios that measure it', () => {
  for (const metric of METRICS) {
    for (const scenario of metric.scenarios) assert.equal(parseThreshold(`${metric.name}>=0`, scenario).metric, metric.name)
  }
})

test('histograms: summaries in ms, merged without loss, and posted between threads intact', async () => {
  const a = newHistogram()
  const b = newHistogram()
  for (let i = 1; i <= 100; i++) recordMs(a, i)
  for (let i = 101; i <= 200; i++) recordMs(b, i)
  recordMs(b, 0.0001)
  recordMs(b, 10 * 60_000)
  const merged = newHistogram()
  mergeInto(merged, a)
  mergeInto(merged, b)
  mergeInto(merged, newHistogram())
  const summary = summarize(merged)!
  assert.equal(summary.count, 202)
  assert.equal(summary.min, 0.001, 'below 1 µs is recorded as 1 µs')
  assert.ok(Math.abs(summary.p50 - 100) < 0.2, `p50 ${summary.p50}`)
  assert.ok(summary.max >= 59_999 && summary.max <= 60_100, 'above a minute is recorded as a minute')
  assert.equal(summarize(newHistogram()), undefined)

  // What the workers do each second: record, post, and the main thread merges.
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    const { createHistogram } = require('node:perf_hooks')
    const h = createHistogram({ lowest: 1, highest: 60000000, figures: 3 })
    for (let i = 1; i <= 1000; i++) h.record(i * 1000)
    parentPort.postMessage(h)
  `, { eval: true })
  const [posted] = await once(worker, 'message') as [RecordableHistogram]
  await worker.terminate()
  const total = newHistogram()
  mergeInto(total, posted)
  assert.equal(total.count, 1_000)
  assert.ok(Math.abs(summarize(total)!.p99 - 990) < 1)
})

test('Prometheus samples are read, shares add up', () => {
  const exposition = '# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes_total 1\nprocess_resident_memory_bytes 5.2e+07\n'
  assert.equal(readSample(exposition, 'process_resident_memory_bytes'), 52_000_000)
  assert.equal(readSample('x{a="b"} 3 1700000000\n', 'x'), 3)
  assert.equal(readSample('', 'x'), undefined)
  for (const [total, count] of [[10, 3], [1, 4], [100, 1], [7, 7]] as const) {
    const shares = Array.from({ length: count }, (_, i) => shareOf(total, i, count))
    assert.equal(shares.reduce((sum, n) => sum + n, 0), total)
    assert.ok(Math.max(...shares) - Math.min(...shares) <= 1)
  }
})

test('flags: defaults per scenario, and mistakes named before anything runs', () => {
  const echo = parseOptions(['echo'])!
  assert.equal(echo.url, 'ws://localhost:3000/ws')
  assert.equal(echo.connections, 10)
  assert.equal(echo.pipeline, 1)
  assert.equal(echo.rate, undefined)
  assert.equal(echo.messageType, 'echo')
  assert.equal(parseOptions(['soak'])!.rate, 100)
  assert.equal(parseOptions(['soak', '--pipeline', '4'])!.rate, undefined)
  const fanout = parseOptions(['fanout', '--token', 'abc', '--header', 'X-Trace: 1'])!
  assert.deepEqual(fanout.headers, { authorization: 'Bearer abc', 'x-trace': '1' })
  assert.equal(fanout.messageType, 'say')
  assert.match(fanout.data, /\{\{marker\}\}/)
  assert.equal(parseOptions(['--help']), undefined)

  const refusals: Array<[string[], RegExp]> = [
    [[], /name a scenario/],
    [['flood'], /unknown scenario "flood"/],
    [['echo', '--bogus'], /bogus/],
    [['echo', '--subscribers', '5'], /--subscribers does not apply to echo/],
    [['echo', '--rate', '10', '--pipeline', '2'], /exclude each other/],
    [['echo', '--duration', '10'], /--duration must be a number with a unit/],
    [['echo', '--connections', '0'], /--connections must be a positive integer/],
    [['echo', '--url', 'http://x/ws'], /--url must be a ws:\/\/ or wss:\/\/ URL/],
    [['echo', '--data', '{nope'], /--data must be JSON/],
    [['echo', '--header', 'no colon'], /--header must read/],
    [['echo', '--threshold', 'p99<5furlongs'], /p99 takes/],
    [['fanout', '--data', '{"room":"x","text":"hi"}'], /\{\{marker\}\}/],
    [['connect', '--warmup', '1s'], /--warmup does not apply to connect/],
    [['soak', '--interval', '500ms'], /at least 1s/]
  ]
  for (const [argv, message] of refusals) assert.throws(() => parseOptions(argv), (err: Error) => err instanceof UsageError && message.test(err.message), argv.join(' '))
})

test('fan-out counts a repeat once as a duplicate and a late arrival as new, holding only the gaps', () => {
  const window = new SequenceWindow()
  assert.deepEqual([1, 2, 2, 5, 4, 4, 3, 5, 6].map((sequence) => window.accept(sequence)),
    [true, true, false, true, true, false, true, false, true])
})
