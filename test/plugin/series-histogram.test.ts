import assert from 'node:assert/strict'
import { test } from 'node:test'
import promClient from 'prom-client'
import { SeriesHistogram } from '../../plugin/telemetry/series-histogram.js'

test('the series histogram exposes exactly what prom-client\'s Histogram exposes for the same observations', async () => {
  const bounds = [0.001, 0.01, 0.1, 1]
  const ours = new promClient.Registry()
  const theirs = new promClient.Registry()
  const batched = new SeriesHistogram('h', 'help text', bounds, ours)
  const reference = new promClient.Histogram({ name: 'h', help: 'help text', labelNames: ['route', 'type'], buckets: bounds, registers: [theirs] })
  // Values on and between the bounds (a value equal to a bound belongs to it), above all of them, and 0.
  const values = [0, 0.001, 0.0010001, 0.05, 0.1, 0.5, 1, 7, 42]
  for (const [route, type] of [['/ws', 'echo'], ['/ws', 'say'], ['/other', 'echo']] as const) {
    const series = batched.series({ route, type })
    for (const value of values.slice(type === 'say' ? 3 : 0)) {
      series.observe(value)
      reference.observe({ route, type }, value)
    }
  }
  assert.equal(await ours.metrics(), await theirs.metrics())
  assert.deepEqual((await ours.getMetricsAsJSON())[0]?.values.length, (await theirs.getMetricsAsJSON())[0]?.values.length)
  // A series is looked up once and kept: the same labels give the same series.
  assert.equal(batched.series({ route: '/ws', type: 'echo' }), batched.series({ route: '/ws', type: 'echo' }))
  // After a reset both show no series until one is observed again; a kept series still counts.
  ours.resetMetrics()
  theirs.resetMetrics()
  assert.equal(await ours.metrics(), await theirs.metrics())
  batched.series({ route: '/ws', type: 'echo' }).observe(0.5)
  reference.observe({ route: '/ws', type: 'echo' }, 0.5)
  assert.equal(await ours.metrics(), await theirs.metrics())
})
