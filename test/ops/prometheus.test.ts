import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../helpers/app.js'
import { TestClient } from '../helpers/client.js'
import { runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { metricValue } from '../helpers/metrics.js'

const run = promisify(execFile)
const PROMETHEUS_DIR = new URL('../../observability/prometheus/', import.meta.url)
const DASHBOARD_DIR = new URL('../../observability/grafana/dashboards/', import.meta.url)

interface Panel { id?: number, type?: string, title?: string, datasource?: { uid?: string }, targets?: Array<{ expr?: string, datasource?: { uid?: string, type?: string } }>, panels?: Panel[] }

async function dashboards (): Promise<Array<{ file: string, uid: string, panels: Panel[] }>> {
  const files = (await readdir(DASHBOARD_DIR)).filter((file) => file.endsWith('.json'))
  return await Promise.all(files.map(async (file) => {
    const dashboard = JSON.parse(await readFile(new URL(file, DASHBOARD_DIR), 'utf8'))
    const panels: Panel[] = []
    const walk = (list: Panel[] = []): void => { for (const panel of list) { panels.push(panel); walk(panel.panels) } }
    walk(dashboard.panels)
    return { file, uid: dashboard.uid as string, panels }
  }))
}

/** Grafana's variables as a dashboard opened with "All" selected would send them. */
function substitute (expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '5m')
    .replace(/\$\{?(\w+)(?::\w+)?\}?/g, '.*')
}

test('promtool: the Prometheus configuration is valid and every alert passes its unit test', async () => {
  const checked = await run('promtool', ['check', 'config', 'prometheus.yml'], { cwd: PROMETHEUS_DIR })
  assert.match(checked.stdout, /SUCCESS/)
  const tested = await run('promtool', ['test', 'rules', 'tests/alerts.test.yml'], { cwd: PROMETHEUS_DIR })
  assert.match(tested.stdout + tested.stderr, /SUCCESS/)
  const alerts = (await readFile(new URL('rules/alerts.yml', PROMETHEUS_DIR), 'utf8')).match(/- alert: (\w+)/g)?.map((line) => line.slice(9)) ?? []
  const tests = await readFile(new URL('tests/alerts.test.yml', PROMETHEUS_DIR), 'utf8')
  assert.ok(alerts.length >= 8)
  for (const alert of alerts) assert.match(tests, new RegExp(`alertname: ${alert}\\n`), `${alert} has a unit test`)
})

test('Grafana dashboards: unique uids and panel ids, datasources that provisioning defines', async () => {
  const provisioned = await readFile(new URL('../../observability/grafana/provisioning/datasources/datasources.yml', import.meta.url), 'utf8')
  const uids = new Set([...provisioned.matchAll(/uid:\s*['"]?([\w-]+)/g)].map((match) => match[1]))
  const all = await dashboards()
  assert.ok(all.length >= 2)
  assert.equal(new Set(all.map((dashboard) => dashboard.uid)).size, all.length, 'dashboard uids are unique')
  for (const dashboard of all) {
    const ids = dashboard.panels.map((panel) => panel.id)
    assert.equal(new Set(ids).size, ids.length, `${dashboard.file}: panel ids are unique`)
    for (const panel of dashboard.panels) {
      for (const uid of [panel.datasource?.uid, ...(panel.targets ?? []).map((target) => target.datasource?.uid)]) {
        if (uid !== undefined && !uid.startsWith('$') && uid !== '-- Grafana --') assert.ok(uids.has(uid), `${dashboard.file} "${panel.title}": datasource ${uid} is provisioned`)
      }
    }
  }
})

test('a real Prometheus scrapes the example app (Redis broker) under load with errors, rate limits and a slow consumer: every dashboard query returns data', async (t) => {
  const redis = await startRedis(t)
  const app = await startApp(t, { REDIS_URL: redis.url, WS_MESSAGES_PER_SECOND: '1000', WS_MAX_BUFFERED_BYTES: '1048576' })
  const prometheusPort = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'realtime-prometheus-'))
  t.after(async () => await rm(dir, { recursive: true, force: true }))
  const config = (await readFile(new URL('prometheus.yml', PROMETHEUS_DIR), 'utf8'))
    .replace('scrape_interval: 5s', 'scrape_interval: 1s')
    .replace(/targets: \[.*\]/, `targets: ['${new URL(app.httpUrl).host}']`)
    .replace(/rule_files:[\s\S]*?\n\n/, `rule_files:\n  - ${new URL('rules/recording.yml', PROMETHEUS_DIR).pathname}\n  - ${new URL('rules/alerts.yml', PROMETHEUS_DIR).pathname}\n\n`)
  await writeFile(join(dir, 'prometheus.yml'), config)
  await runProgram(t, 'prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${prometheusPort}`])
  const prometheus = `http://127.0.0.1:${prometheusPort}`
  await waitForHttp(`${prometheus}/-/ready`)

  // Traffic: chat through Redis, refusals of every kind, closes by several codes.
  const alice = await TestClient.connect(t, `${app.wsUrl}/ws`)
  const bob = await TestClient.connect(t, `${app.wsUrl}/ws`)
  await bob.request('$subscribe', { topic: 'room:metrics' })
  for (let i = 0; i < 20; i++) await alice.request('say', { room: 'metrics', text: `message ${i}` })
  for (let i = 0; i < 5; i++) await alice.request('echo', { text: 'echo' })
  assert.equal((await alice.request('echo', { text: 42 })).error.code, 'VALIDATION_FAILED')
  assert.equal((await alice.request('nope')).error.code, 'UNKNOWN_TYPE')
  const abuser = await TestClient.connect(t, `${app.wsUrl}/ws`)
  // A burst of 1000, then more than 2 × 1000 refusals within ten seconds: RATE_LIMITED, then 1008.
  for (let i = 0; i < 3_200; i++) abuser.send({ type: 'echo', data: { text: 'flood' } })
  assert.equal((await abuser.closed).code, 1008)
  // A peer that reads nothing while its room floods is closed with 4001.
  const stalled = await TestClient.connect(t, `${app.wsUrl}/ws`)
  await stalled.request('$subscribe', { topic: 'room:flood' })
  stalled.socket.pause()
  const speakers = await Promise.all(Array.from({ length: 8 }, async () => await TestClient.connect(t, `${app.wsUrl}/ws`)))
  const text = 'x'.repeat(2000)
  const registry = app.app.realtime.metricsRegistry
  for (let round = 0; round < 1_000 && await metricValue(registry, 'ws_slow_consumer_closes_total') === 0; round++) {
    await Promise.all(speakers.map(async (speaker) => await speaker.request('say', { room: 'flood', text })))
  }
  assert.equal(await metricValue(registry, 'ws_slow_consumer_closes_total'), 1, 'the stalled peer was closed as a slow consumer')
  const leaver = await TestClient.connect(t, `${app.wsUrl}/ws`)
  leaver.socket.close(1000)
  await leaver.closed

  const query = async (expr: string): Promise<unknown[]> => {
    const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = await response.json() as { status: string, error?: string, data?: { result: unknown[] } }
    assert.equal(body.status, 'success', `${expr}: ${body.error}`)
    return body.data?.result ?? []
  }
  // Prometheus applies new targets every few seconds, then scrapes each second: wait until it
  // holds the slow consumer's close and two points of the rates after the traffic.
  const deadline = Date.now() + 30_000
  while ((await query('ws_slow_consumer_closes_total == 1')).length === 0 || (await query('count_over_time(ws_slow_consumer_closes_total[1m]) >= 2')).length === 0) {
    assert.ok(Date.now() < deadline, `Prometheus never scraped the traffic: ${JSON.stringify(await query('up'))}`)
    await sleep(250)
  }
  assert.ok((await query('ws_rate_limited_total{scope="message"} > 0')).length > 0, 'rate limits were scraped')
  assert.ok((await query('ws_broker_delivery_seconds_count{broker="redis"} > 0')).length > 0, 'Redis deliveries were scraped')

  let checked = 0
  for (const dashboard of await dashboards()) {
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        const uid = target.datasource?.uid ?? panel.datasource?.uid
        if (target.expr === undefined || uid !== 'prometheus') continue
        const expr = substitute(target.expr)
        assert.ok((await query(expr)).length > 0, `${dashboard.file} "${panel.title}": ${expr} returned no data`)
        checked++
      }
    }
  }
  assert.ok(checked >= 20, `${checked} panel queries checked`)
})
