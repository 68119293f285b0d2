import { formatDuration } from '../duration.js'
import type { LatencySummary } from '../histogram.js'
import { formatBytes, formatCount, formatMetric, formatMs, formatPercent, formatRate } from './format.js'
import type { Report } from './model.js'

const LABEL_WIDTH = 26

/** The report for people: what was run, the headline numbers, then what went wrong, if anything. */
export function renderText (report: Report): string {
  const lines: string[] = []
  const row = (label: string, value: string): void => {
    if (label.length < LABEL_WIDTH) {
      lines.push(`  ${label.padEnd(LABEL_WIDTH)}${value}`)
    } else {
      lines.push(`  ${label}`, `  ${''.padEnd(LABEL_WIDTH)}${value}`)
    }
  }
  const m = report.metrics

  lines.push(`fastify-realtime-loadtest · ${report.scenario} · ${report.url}`)
  lines.push(`  started ${report.startedAt}, measured ${formatDuration(report.measuredSeconds * 1_000)}${report.rampSeconds === undefined ? '' : ` (ramp ${formatDuration(report.rampSeconds * 1_000)})`}, ${report.workers} worker thread${report.workers === 1 ? '' : 's'}${report.interrupted ? ', INTERRUPTED' : ''}`)
  lines.push(`  ${Object.entries(report.settings).filter(([key, value]) => key !== 'thresholds' && value !== undefined && !(Array.isArray(value) && value.length === 0)).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join('  ')}`)
  lines.push('')

  latencyRow(row, report.latencyLabel, report.latency[report.mainLatency])
  if (report.scenario !== 'connect' && report.scenario !== 'churn') latencyRow(row, 'handshake (to $welcome)', report.latency.connect)
  if (report.latency.reconnect !== undefined) latencyRow(row, 'reconnect time', report.latency.reconnect)
  if (report.latency.publish !== undefined) latencyRow(row, 'publish reply latency', report.latency.publish)
  row('throughput', `${formatRate(m.rate)} ${report.throughputLabel}${report.scenario === 'connect' ? ' during the ramp' : ''}`)
  row(report.scenario === 'connect' || report.scenario === 'churn' ? 'handshakes' : report.scenario === 'fanout' ? 'publishes' : 'requests',
    `${formatCount(m.requests)}   errors ${formatCount(m.error_count)} (${formatPercent(m.errors)})   timeouts ${formatCount(m.timeouts)}`)
  row('connections', `peak ${formatCount(m.connections)} open   opened ${formatCount(report.counters.connects)}   failed ${formatCount(report.counters.connect_failures ?? 0)}   closed by server ${formatCount(m.unexpected_closes)}${report.counters.reconnects === undefined ? '' : `   reconnects ${formatCount(report.counters.reconnects)}`}`)
  if (report.fanout !== undefined) {
    const f = report.fanout
    row('deliveries', `expected ${formatCount(f.expected)} (${formatCount(f.acknowledged)} publishes × ${f.subscribers} subscribers)   received ${formatCount(f.received)}`)
    row('', `lost ${formatCount(f.lost)} (${formatPercent(m.loss)})   duplicates ${formatCount(f.duplicates)}   out of order ${formatCount(f.outOfOrder)}`)
  }
  grouped(row, 'errors by code', report.errorsByCode)
  grouped(row, 'closes by code', report.closesByCode)
  grouped(row, 'failed handshakes', report.connectFailures)

  if (report.intervals !== undefined && report.intervals.length > 0) {
    lines.push('', `  ${'interval'.padEnd(14)}${'p50'.padStart(10)}${'p99'.padStart(10)}${report.throughputLabel.padStart(14)}${'errors'.padStart(9)}${'server RSS'.padStart(13)}`)
    for (const interval of report.intervals) {
      const span = `${formatDuration(interval.startSecond * 1_000)}–${formatDuration(interval.endSecond * 1_000)}`
      lines.push(`  ${span.padEnd(14)}${formatMs(interval.p50).padStart(10)}${formatMs(interval.p99).padStart(10)}${formatRate(interval.throughput).padStart(14)}${formatCount(interval.errors).padStart(9)}${formatBytes(interval.memoryBytes).padStart(13)}`)
    }
    const drift = ['p50_drift', 'p99_drift', 'rate_drift', 'memory_drift'].filter((name) => m[name] !== undefined)
    if (drift.length > 0) row('drift (last vs first)', drift.map((name) => `${name.replace('_drift', '')} ${signed(m[name])}`).join('   '))
    if (m.memory_growth !== undefined) row('server memory', `${signedBytes(m.memory_growth)} over the run`)
  }

  if (report.thresholds.length > 0) {
    lines.push('', 'thresholds')
    for (const threshold of report.thresholds) {
      lines.push(`  ${threshold.passed ? '✓ pass' : '✗ FAIL'}  ${threshold.expression.padEnd(20)} actual ${formatMetric(threshold.metric, threshold.actual)}`)
    }
  }
  if (report.warnings.length > 0) {
    lines.push('', 'warnings')
    for (const warning of report.warnings) lines.push(`  ! ${warning}`)
  }
  return lines.join('\n') + '\n'
}

function latencyRow (row: (label: string, value: string) => void, label: string, summary: LatencySummary | undefined): void {
  if (summary === undefined) {
    row(label, 'no samples')
    return
  }
  row(label, `p50 ${formatMs(summary.p50)}  p90 ${formatMs(summary.p90)}  p99 ${formatMs(summary.p99)}  p99.9 ${formatMs(summary.p999)}  max ${formatMs(summary.max)}  (n=${formatCount(summary.count)})`)
}

function grouped (row: (label: string, value: string) => void, label: string, counts: Record<string, number>): void {
  const entries = Object.entries(counts)
  if (entries.length > 0) row(label, entries.map(([key, n]) => `${key} ×${formatCount(n)}`).join('   '))
}

function signed (fraction: number | undefined): string {
  if (fraction === undefined) return '—'
  return `${fraction >= 0 ? '+' : ''}${formatPercent(fraction)}`
}

function signedBytes (bytes: number): string {
  return `${bytes >= 0 ? '+' : ''}${formatBytes(bytes)}`
}
