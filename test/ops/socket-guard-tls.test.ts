import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tlsConnect } from 'node:tls'
import Fastify from 'fastify'
import realtime from '../../plugin/index.js'
import { TestClient } from '../helpers/client.js'
import { HalfOpenPeers } from '../helpers/half-open.js'
import { metricValue } from '../helpers/metrics.js'
import { echoRoute } from '../helpers/raw-peer.js'
import { listen, logCollector, within } from '../helpers/server.js'

// The socket guard behind TLS, with a certificate openssl makes for the run.

test('https: the deadline and the cap see the TCP socket under TLS; a wss connection is served past the deadline', async (t) => {
  const peers = new HalfOpenPeers(t)
  const dir = mkdtempSync(join(tmpdir(), 'socket-guard-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  const { stream, logs } = logCollector()
  const app = Fastify({ logger: { level: 'info', stream }, https: { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) } })
  await app.register(realtime, { drainMs: 50, headersTimeoutMs: 300 })
  echoRoute(app)
  const server = await listen(t, app, logs)
  const port = Number(new URL(server.httpUrl).port)

  const client = await TestClient.connect(t, `wss://127.0.0.1:${port}/ws`, { rejectUnauthorized: false })
  const silentTls = peers.track(tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }))
  silentTls.on('error', () => {})
  await new Promise((resolve) => silentTls.once('secureConnect', resolve))
  const silentTlsClosed = new Promise((resolve) => silentTls.once('close', resolve))
  const silentTcp = await peers.open(port)

  await within(silentTlsClosed, 2_000, 'a silent TLS socket closed')
  await within(silentTcp.closed, 2_000, 'a silent TCP socket closed')
  await sleep(400)
  assert.deepEqual((await client.request('echo', { text: 'over tls' })).data, { text: 'over tls' })
  assert.equal(await metricValue(app.realtime.metricsRegistry, 'ws_sockets_refused_total', { reason: 'headers_timeout' }), 2)
})
