import { findMetric } from '../metrics.js'

export function formatMs (ms: number | undefined): string {
  if (ms === undefined) return '—'
  if (ms < 1) return `${ms.toFixed(3)}ms`
  if (ms < 100) return `${ms.toFixed(2)}ms`
  if (ms < 10_000) return `${Math.round(ms)}ms`
  return `${(ms / 1_000).toFixed(1)}s`
}

export function formatCount (n: number | undefined): string {
  if (n === undefined) return '—'
  return Math.round(n).toLocaleString('en-US')
}

export function formatRate (n: number | undefined): string {
  if (n === undefined) return '—'
  return n >= 100 ? formatCount(n) : n.toFixed(1)
}

export function formatPercent (fraction: number | undefined): string {
  if (fraction === undefined) return '—'
  const percent = fraction * 100
  return `${percent === 0 ? '0' : Math.abs(percent) < 0.01 ? percent.toExponential(1) : percent.toFixed(2)}%`
}

export function formatBytes (bytes: number | undefined): string {
  if (bytes === undefined) return '—'
  const sign = bytes < 0 ? '−' : ''
  const size = Math.abs(bytes)
  if (size < 1_024) return `${sign}${size} B`
  if (size < 1_048_576) return `${sign}${(size / 1_024).toFixed(1)} KB`
  return `${sign}${(size / 1_048_576).toFixed(1)} MB`
}

/** A metric's value in the unit its kind is written in. */
export function formatMetric (name: string, value: number | undefined): string {
  switch (findMetric(name)?.kind) {
    case 'latency': return formatMs(value)
    case 'ratio': return formatPercent(value)
    case 'bytes': return formatBytes(value)
    case 'rate': return `${formatRate(value)}/s`
    default: return formatCount(value)
  }
}
