import type { Registry } from 'prom-client'

/** The value of one metric series, 0 when it has not been touched; labels must match exactly. */
export async function metricValue (registry: Registry | undefined, name: string, labels: Record<string, string> = {}): Promise<number> {
  if (registry === undefined) throw new Error('metrics are off')
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  const { values } = await metric.get()
  const wanted = Object.entries(labels)
  const series = values.filter((value) => {
    const own = value.labels as Record<string, string | number>
    return (value as { metricName?: string }).metricName === undefined || (value as { metricName?: string }).metricName === name || (value as { metricName?: string }).metricName === `${name}_count`
      ? wanted.every(([key, expected]) => String(own[key]) === expected) && Object.keys(own).filter((key) => key !== 'le').length === wanted.length
      : false
  })
  const counted = series.find((value) => (value as { metricName?: string }).metricName === `${name}_count`)
  if (counted !== undefined) return counted.value
  return series.reduce((sum, value) => sum + value.value, 0)
}
