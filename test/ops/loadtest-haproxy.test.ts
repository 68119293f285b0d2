import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { startApp } from '../helpers/app.js'
import { runProgram, waitForHttp } from '../helpers/load-balancer.js'
import { LOADED_APP_ENV, readReport, runCli, tempDir } from '../helpers/loadtest-cli.js'
import { freePort } from '../helpers/redis.js'

test('through HAProxy (deploy/haproxy.cfg) in front of two nodes: echo load spreads over both', async (t) => {
  const nodes = [await startApp(t, LOADED_APP_ENV), await startApp(t, LOADED_APP_ENV)]
  const lbPort = await freePort()
  const [a, b] = nodes.map((node) => new URL(node.httpUrl).host)
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], { LB_BIND: `127.0.0.1:${lbPort}`, APP1_ADDR: a, APP2_ADDR: b, APP3_ADDR: b })
  await waitForHttp(`http://127.0.0.1:${lbPort}/health/ready`)
  // Until its health checks see every node up, HAProxy would send everyone to the first.
  await sleep(2_500)
  const dir = await tempDir(t)
  const counts = [0, 0]
  const watcher = setInterval(() => nodes.forEach((node, i) => { counts[i] = Math.max(counts[i]!, node.app.realtime.connectionCount) }), 20)
  t.after(() => clearInterval(watcher))
  const run = await runCli(['echo', '--url', `ws://127.0.0.1:${lbPort}/ws`, '--duration', '1500ms', '--connections', '6', '--pipeline', '2',
    '--header', 'X-Load-Test: 1', '--threshold', 'errors==0', '--json', join(dir, 'report.json')])
  assert.equal(run.code, 0, run.stdout + run.stderr)
  const report = await readReport(join(dir, 'report.json'))
  assert.ok((report.counters.replies ?? 0) > 100)
  assert.equal(report.metrics.connections, 6)
  assert.ok(counts[0]! >= 1 && counts[1]! >= 1, `both nodes served connections: ${counts.join(', ')}`)
  assert.equal(counts[0]! + counts[1]!, 6)
})
