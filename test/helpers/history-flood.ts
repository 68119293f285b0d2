/*
 * Run as a child process (`node --expose-gc --import tsx`): floods the plugin's default memory
 * broker with publishes through `route.publish`, the path an app's handlers take, and prints one
 * JSON line of what memory and the history gauges did. A child of its own, so nothing else in the
 * heap moves the figures.
 */
import Fastify from 'fastify'
import { Type } from 'typebox'
import realtime from '../../plugin/index.js'
import { metricValue } from './metrics.js'

/** What the flood reports on its stdout. */
export interface FloodReport {
  publishes: number
  rssBefore: number
  /** After half the publishes: the history is full by then, so RSS should not grow after it. */
  rssMiddle: number
  rssAfter: number
  heapBefore: number
  heapAfter: number
  /** The broker's estimate before and after, and the highest the gauge read during the flood. */
  heldBefore: number
  heldAfter: number
  maxGauge: number
  entriesAfter: number
}

const publishes = Number(process.env.FLOOD_PUBLISHES ?? 50_000)
const textLength = Number(process.env.FLOOD_TEXT_LENGTH ?? 2_000)
const topics = Number(process.env.FLOOD_TOPICS ?? 100)
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with --expose-gc')

function settled (): { rss: number, heap: number } {
  for (let i = 0; i < 4; i++) gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heap: heapUsed }
}

const app = Fastify()
await app.register(realtime)
const route = app.wsRoute('/ws', {
  events: { note: Type.Object({ n: Type.Integer(), text: Type.String() }) },
  authorizeSubscribe: () => true
})
await app.ready()
const registry = app.realtime.metricsRegistry
const broker = app.realtime.broker as { historyBytes?: number, historyEntries?: number }
const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(Math.ceil(textLength / 36) + 1)
// A fresh string per message, as a parsed client frame would give.
const textOf = (n: number): string => Buffer.from(`${n}:${alphabet}`.slice(0, textLength)).toString()

// The code paths and shapes warm up first, so their one-off cost is not counted as history.
for (let n = 0; n < 1_000; n++) await route.publish(`room:${n % topics}`, 'note', { n, text: textOf(n) })
const before = settled()
const heldBefore = broker.historyBytes ?? 0
let maxGauge = 0
let middle = before
for (let n = 0; n < publishes; n++) {
  if (n === publishes / 2) middle = settled()
  await route.publish(`room:${n % topics}`, 'note', { n, text: textOf(n) })
  if (n % 500 === 0) maxGauge = Math.max(maxGauge, await metricValue(registry, 'ws_broker_history_bytes', { broker: 'memory' }))
}
maxGauge = Math.max(maxGauge, await metricValue(registry, 'ws_broker_history_bytes', { broker: 'memory' }))
const after = settled()
const report: FloodReport = {
  publishes,
  rssBefore: before.rss,
  rssMiddle: middle.rss,
  rssAfter: after.rss,
  heapBefore: before.heap,
  heapAfter: after.heap,
  heldBefore,
  heldAfter: broker.historyBytes ?? 0,
  maxGauge,
  entriesAfter: broker.historyEntries ?? 0
}
process.stdout.write(`${JSON.stringify(report)}\n`)
await app.close()
