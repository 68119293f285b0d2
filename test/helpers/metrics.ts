import type { Registry } from 'prom-client'

/**
 * The sum of a metric's series whose labels include `labels` (a histogram counts observations),
 * 0 when none has been touched.
 */
export async function metricValue (registry: Registry | undefined, name: string, labels: Record<string, string> = {}): Promise<number> {
  if (registry === undefined) throw new Error('metrics are off')
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  const { type, values } = await metric.get() as unknown as { type: string, values: Array<{ value: number, labels: object, metricName?: string }> }
  const series = type === 'histogram' ? values.filter((value) => value.metricName === `${name}_count`) : values
  return series
    .filter((value) => Object.entries(labels).every(([key, expected]) => String((value.labels as Record<string, unknown>)[key]) === expected))
    .reduce((sum, value) => sum + value.value, 0)
}
