/** One line of a chart: its name, colour and points (x in seconds). */
export interface Series {
  name: string
  color: string
  points: Array<{ x: number, y: number }>
}

const WIDTH = 760
const HEIGHT = 240
const MARGIN = { top: 16, right: 16, bottom: 36, left: 64 }
/** More points than pixels only slow the browser down: longer series keep every n-th point's max. */
const MAX_POINTS = 600

/**
 * A line chart as inline SVG, so the report needs no script, font or network: axes with round
 * tick values, one polyline per series, a legend.
 */
export function lineChart (series: Series[], options: { yLabel: string, formatY: (y: number) => string }): string {
  const visible = series.map((line) => ({ ...line, points: thin(line.points) }))
  const all = visible.flatMap((line) => line.points)
  if (all.length === 0) return '<p class="empty">no samples</p>'
  const xMax = Math.max(1, ...all.map((point) => point.x))
  const yMax = niceCeiling(Math.max(...all.map((point) => point.y)))
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (value: number): number => MARGIN.left + (value / xMax) * plotWidth
  const y = (value: number): number => MARGIN.top + plotHeight - (value / yMax) * plotHeight

  const parts: string[] = [`<svg viewBox="0 0 ${WIDTH} ${HEIGHT}" width="100%" role="img" aria-label="${escapeXml(options.yLabel)} over time">`]
  for (const tick of ticks(yMax)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" class="grid"/>`)
    parts.push(`<text x="${MARGIN.left - 6}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end">${escapeXml(options.formatY(tick))}</text>`)
  }
  for (const tick of ticks(niceCeiling(xMax)).filter((value) => value <= xMax)) {
    parts.push(`<text x="${x(tick).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${tick}s</text>`)
  }
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${HEIGHT - MARGIN.bottom}" class="axis"/>`)
  parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${HEIGHT - MARGIN.bottom}" y2="${HEIGHT - MARGIN.bottom}" class="axis"/>`)
  parts.push(`<text x="14" y="${MARGIN.top + plotHeight / 2}" transform="rotate(-90 14 ${MARGIN.top + plotHeight / 2})" text-anchor="middle">${escapeXml(options.yLabel)}</text>`)
  visible.forEach((line, i) => {
    if (line.points.length === 1) {
      const [point] = line.points
      parts.push(`<circle cx="${x(point!.x).toFixed(1)}" cy="${y(point!.y).toFixed(1)}" r="3" fill="${line.color}"/>`)
    } else if (line.points.length > 1) {
      parts.push(`<polyline fill="none" stroke="${line.color}" stroke-width="1.8" points="${line.points.map((point) => `${x(point.x).toFixed(1)},${y(point.y).toFixed(1)}`).join(' ')}"/>`)
    }
    const legendX = MARGIN.left + 10 + i * 140
    parts.push(`<rect x="${legendX}" y="${HEIGHT - 14}" width="12" height="4" fill="${line.color}"/><text x="${legendX + 18}" y="${HEIGHT - 9}">${escapeXml(line.name)}</text>`)
  })
  parts.push('</svg>')
  return parts.join('')
}

export function escapeXml (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
}

function thin (points: Array<{ x: number, y: number }>): Array<{ x: number, y: number }> {
  if (points.length <= MAX_POINTS) return points
  const step = Math.ceil(points.length / MAX_POINTS)
  const thinned: Array<{ x: number, y: number }> = []
  for (let i = 0; i < points.length; i += step) {
    const slice = points.slice(i, i + step)
    // The max of each group, so that a spike is never thinned away.
    thinned.push(slice.reduce((top, point) => point.y > top.y ? point : top))
  }
  return thinned
}

/** 1, 2 or 5 times a power of ten, at or above `value`. */
function niceCeiling (value: number): number {
  if (value <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function ticks (max: number): number[] {
  const step = niceCeiling(max / 5)
  const values: number[] = []
  for (let value = 0; value <= max + step / 1_000; value += step) values.push(Number(value.toPrecision(12)))
  return values
}
