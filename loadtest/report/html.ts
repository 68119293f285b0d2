import { formatDuration } from '../duration.js'
import { formatBytes, formatCount, formatMetric, formatMs, formatRate } from './format.js'
import type { Report } from './model.js'
import { escapeXml as escape, lineChart } from './svg-chart.js'

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 860px; color: #1f2328; padding: 0 1rem; }
h1 { font-size: 1.35rem; margin-bottom: .2rem; } h2 { font-size: 1.05rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
.meta { color: #59636e; margin: 0; } table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid #eaeef2; font-variant-numeric: tabular-nums; } td.n, th.n { text-align: right; }
.pass { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; } .warn { color: #9a6700; }
svg text { font-size: 11px; fill: #59636e; } svg .grid { stroke: #eaeef2; } svg .axis { stroke: #8c959f; } .empty { color: #59636e; }
.verdict { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; color: #fff; background: #1a7f37; } .verdict.failed { background: #cf222e; }
`

/** One file, nothing fetched: inline CSS, inline SVG charts, no script. */
export function renderHtml (report: Report): string {
  const m = report.metrics
  const title = `${report.scenario} · ${report.url}`
  const rows: Array<[string, string]> = [
    ['measured', `${formatDuration(report.measuredSeconds * 1_000)}${report.rampSeconds === undefined ? '' : ` (ramp ${formatDuration(report.rampSeconds * 1_000)})`}, ${report.workers} worker thread(s)`],
    ['throughput', `${formatRate(m.rate)} ${report.throughputLabel}`],
    [report.latencyLabel, latencyCell(report, report.mainLatency)],
    ['handshake (to $welcome)', latencyCell(report, 'connect')],
    ...(report.latency.reconnect === undefined ? [] : [['reconnect time', latencyCell(report, 'reconnect')] as [string, string]]),
    ['requests / errors', `${formatCount(m.requests)} / ${formatCount(m.error_count)} (${formatMetric('errors', m.errors)}), timeouts ${formatCount(m.timeouts)}`],
    ['connections', `peak ${formatCount(m.connections)}, opened ${formatCount(report.counters.connects)}, failed ${formatCount(report.counters.connect_failures ?? 0)}, closed by server ${formatCount(m.unexpected_closes)}`],
    ...(report.fanout === undefined
      ? []
      : [['deliveries', `expected ${formatCount(report.fanout.expected)}, received ${formatCount(report.fanout.received)}, lost ${formatCount(report.fanout.lost)} (${formatMetric('loss', m.loss)}), duplicates ${formatCount(report.fanout.duplicates)}, out of order ${formatCount(report.fanout.outOfOrder)}`] as [string, string]]),
    ...groupRow('errors by code', report.errorsByCode),
    ...groupRow('closes by code', report.closesByCode),
    ...groupRow('failed handshakes', report.connectFailures)
  ]
  const latencySeries = [
    { name: 'p50', color: '#0969da', points: report.timeline.filter((point) => point.p50 !== undefined).map((point) => ({ x: point.second, y: point.p50 as number })) },
    { name: 'p99', color: '#cf222e', points: report.timeline.filter((point) => point.p99 !== undefined).map((point) => ({ x: point.second, y: point.p99 as number })) }
  ]
  const throughputSeries = [
    { name: report.throughputLabel, color: '#1a7f37', points: report.timeline.map((point) => ({ x: point.second, y: point.throughput })) },
    { name: 'errors/s', color: '#cf222e', points: report.timeline.map((point) => ({ x: point.second, y: point.errors })) }
  ]
  const verdict = report.thresholds.length === 0 ? '' : `<span class="verdict${report.passed ? '' : ' failed'}">${report.passed ? 'thresholds passed' : 'thresholds FAILED'}</span>`

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fastify-realtime load test: ${escape(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>fastify-realtime load test: ${escape(report.scenario)} ${verdict}</h1>
<p class="meta">${escape(report.url)} · started ${escape(report.startedAt)}${report.interrupted ? ' · <span class="fail">interrupted</span>' : ''}</p>
<p class="meta">${escape(Object.entries(report.settings).filter(([key, value]) => key !== 'thresholds' && value !== undefined && !(Array.isArray(value) && value.length === 0)).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(' · '))}</p>
<h2>Summary</h2>
<table>${rows.map(([label, value]) => `<tr><th>${escape(label)}</th><td>${escape(value)}</td></tr>`).join('\n')}</table>
${thresholdTable(report)}${warningList(report)}<h2>${escape(report.latencyLabel)} per second</h2>
${lineChart(latencySeries, { yLabel: 'ms', formatY: (y) => formatMs(y).replace('ms', '') })}
<h2>Throughput per second</h2>
${lineChart(throughputSeries, { yLabel: 'per second', formatY: (y) => formatCount(y) })}
${intervalTable(report)}<h2>Latency distribution</h2>
<table><tr><th>measure</th><th class="n">count</th><th class="n">min</th><th class="n">p50</th><th class="n">p90</th><th class="n">p99</th><th class="n">p99.9</th><th class="n">max</th></tr>
${Object.entries(report.latency).map(([name, summary]) => `<tr><td>${escape(name)}</td><td class="n">${formatCount(summary.count)}</td>${[summary.min, summary.p50, summary.p90, summary.p99, summary.p999, summary.max].map((value) => `<td class="n">${formatMs(value)}</td>`).join('')}</tr>`).join('\n')}
</table>
<p class="meta">Generated by fastify-realtime-loadtest (report version ${report.reportVersion}, run ${escape(report.runId)}).</p>
</body>
</html>
`
}

function latencyCell (report: Report, name: string): string {
  const summary = report.latency[name]
  if (summary === undefined) return 'no samples'
  return `p50 ${formatMs(summary.p50)} · p99 ${formatMs(summary.p99)} · p99.9 ${formatMs(summary.p999)} · max ${formatMs(summary.max)} (n=${formatCount(summary.count)})`
}

function groupRow (label: string, counts: Record<string, number>): Array<[string, string]> {
  const entries = Object.entries(counts)
  return entries.length === 0 ? [] : [[label, entries.map(([key, n]) => `${key} ×${formatCount(n)}`).join(', ')]]
}

function thresholdTable (report: Report): string {
  if (report.thresholds.length === 0) return ''
  return `<h2>Thresholds</h2>
<table><tr><th>threshold</th><th>result</th><th class="n">actual</th></tr>
${report.thresholds.map((threshold) => `<tr><td><code>${escape(threshold.expression)}</code></td><td class="${threshold.passed ? 'pass' : 'fail'}">${threshold.passed ? 'pass' : 'FAIL'}</td><td class="n">${escape(formatMetric(threshold.metric, threshold.actual))}</td></tr>`).join('\n')}
</table>
`
}

function warningList (report: Report): string {
  if (report.warnings.length === 0) return ''
  return `<h2>Warnings</h2>\n<ul>${report.warnings.map((warning) => `<li class="warn">${escape(warning)}</li>`).join('')}</ul>\n`
}

function intervalTable (report: Report): string {
  if (report.intervals === undefined || report.intervals.length === 0) return ''
  return `<h2>Intervals</h2>
<table><tr><th>interval</th><th class="n">p50</th><th class="n">p99</th><th class="n">${escape(report.throughputLabel)}</th><th class="n">errors</th><th class="n">server RSS</th></tr>
${report.intervals.map((row) => `<tr><td>${row.startSecond}s–${row.endSecond}s</td><td class="n">${formatMs(row.p50)}</td><td class="n">${formatMs(row.p99)}</td><td class="n">${formatRate(row.throughput)}</td><td class="n">${formatCount(row.errors)}</td><td class="n">${formatBytes(row.memoryBytes)}</td></tr>`).join('\n')}
</table>
`
}
