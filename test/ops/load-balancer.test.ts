import assert from 'node:assert/strict'
import { test } from 'node:test'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { startApp } from '../helpers/app.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { nginxPrefix, renderNginxTemplate, runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { freePort } from '../helpers/redis.js'

const run = promisify(execFile)

/** The template with the variables the official image's envsubst would fill in. */
async function renderNginx (variables: Record<string, string>): Promise<string> {
  return await renderNginxTemplate(new URL('../../deploy/nginx/realtime.conf.template', import.meta.url), variables)
}

test('haproxy -c accepts deploy/haproxy.cfg', async () => {
  const { stdout, stderr } = await run('haproxy', ['-c', '-f', 'deploy/haproxy.cfg'], {
    env: { ...process.env, LB_BIND: '127.0.0.1:8080', APP1_ADDR: '127.0.0.1:3001', APP2_ADDR: '127.0.0.1:3002', APP3_ADDR: '127.0.0.1:3003' }
  })
  assert.match(stdout + stderr, /Configuration file is valid/)
})

test('NGINX: nginx -t accepts the template; through it, upgrades reach the nodes and skip a draining one', async (t) => {
  const apps = await Promise.all([0, 1, 2].map(async () => await startApp(t, { WS_DRAIN_MS: '2000' })))
  const lbPort = await freePort()
  const variables = { LB_PORT: `127.0.0.1:${lbPort}`, ...Object.fromEntries(apps.map((app, i) => [`APP${i + 1}_ADDR`, new URL(app.httpUrl).host])) }
  const prefix = await nginxPrefix(t, await renderNginx(variables))
  const checked = await run('nginx', ['-t', '-p', prefix, '-c', 'nginx.conf'])
  assert.match(checked.stderr, /test is successful/)
  await runProgram(t, 'nginx', ['-p', prefix, '-c', 'nginx.conf', '-g', 'daemon off;'])
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/live`)

  const clients = []
  for (let i = 0; i < 3; i++) clients.push(await TestClient.connect(t, `ws://127.0.0.1:${lbPort}/ws`))
  for (const client of clients) assert.deepEqual((await client.request('echo', { text: 'via nginx' })).data, { text: 'via nginx' })
  assert.deepEqual(apps.map((app) => app.app.realtime.connectionCount), [1, 1, 1], 'least_conn spreads them')

  // A draining node answers upgrades with 503: NGINX tries the next node instead.
  const draining = apps[0]!.app.realtime.drain()
  for (let i = 0; i < 4; i++) await TestClient.connect(t, `ws://127.0.0.1:${lbPort}/ws`)
  assert.equal(apps[1]!.app.realtime.connectionCount + apps[2]!.app.realtime.connectionCount, 6, 'every new client on a node that is not draining')
  assert.equal((await upgradeStatus(`ws://127.0.0.1:${lbPort}/ws`)).status, 101)
  await draining
  assert.equal(apps[0]!.app.realtime.connectionCount, 0)
})

test('NGINX overwrites X-Forwarded-For: a client cannot pick the address the upgrade rate limit counts', async (t) => {
  const app = await startApp(t, { TRUST_PROXY: '127.0.0.1', WS_UPGRADE_RATE_LIMIT: '2' })
  const lbPort = await freePort()
  const node = new URL(app.httpUrl).host
  const prefix = await nginxPrefix(t, await renderNginx({ LB_PORT: `127.0.0.1:${lbPort}`, APP1_ADDR: node, APP2_ADDR: node, APP3_ADDR: node }))
  await runProgram(t, 'nginx', ['-p', prefix, '-c', 'nginx.conf', '-g', 'daemon off;'])
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/live`)
  const statuses = []
  for (const forged of ['6.6.6.1', '6.6.6.2', '6.6.6.3']) {
    statuses.push((await upgradeStatus(`ws://127.0.0.1:${lbPort}/ws`, { 'x-forwarded-for': forged })).status)
  }
  assert.deepEqual(statuses, [101, 101, 429], 'all three come from one address, whatever they claim')
})

test('HAProxy overwrites X-Forwarded-For too', async (t) => {
  const app = await startApp(t, { TRUST_PROXY: '127.0.0.1', WS_UPGRADE_RATE_LIMIT: '2' })
  const lbPort = await freePort()
  const node = new URL(app.httpUrl).host
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], { LB_BIND: `127.0.0.1:${lbPort}`, APP1_ADDR: node, APP2_ADDR: node, APP3_ADDR: node })
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/live`)
  const statuses = []
  for (const forged of ['6.6.6.1', '6.6.6.2', '6.6.6.3']) {
    statuses.push((await upgradeStatus(`ws://127.0.0.1:${lbPort}/ws`, { 'x-forwarded-for': forged })).status)
  }
  assert.deepEqual(statuses, [101, 101, 429])
})
