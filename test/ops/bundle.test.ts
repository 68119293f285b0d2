import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { freePort } from '../helpers/redis.js'
import { waitForHttp } from '../helpers/load-balancer.js'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url)

test('docker-compose.yml: docker-compose accepts it, every mounted file exists, every image is pinned', async () => {
  await run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root })
  const compose = await readFile(new URL('docker-compose.yml', root), 'utf8')
  const mounts = [...compose.matchAll(/^\s+- (\.\/[^:]+):/gm)].map((match) => match[1] as string)
  assert.ok(mounts.length >= 5)
  for (const mount of mounts) assert.ok(existsSync(new URL(mount, root)), `${mount} exists`)
  const images = [...compose.matchAll(/^\s+image: (\S+)$/gm)].map((match) => match[1] as string)
  for (const image of images) assert.match(image, /:(?!latest$)[\w.-]+$/, `${image} names a version`)
  for (const service of ['app1', 'app2', 'app3', 'haproxy', 'redis', 'prometheus', 'grafana', 'loki', 'jaeger']) {
    assert.match(compose, new RegExp(`^  ${service}:$`, 'm'), `service ${service}`)
  }
})

test('Dockerfile: its production-only install runs the app as its CMD says, healthy, and SIGTERM exits 0', async (t) => {
  const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8')
  assert.match(dockerfile, /npm ci --omit=dev/)
  assert.match(dockerfile, /^USER node$/m, 'not root')
  const cmd = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
  const healthcheck = JSON.parse(/CMD (\["node", "-e".*\])$/m.exec(dockerfile)?.[1] ?? '[]') as string[]
  assert.equal(cmd[0], 'node')
  assert.equal(healthcheck[0], 'node')

  // What the image holds, from the Dockerfile's own COPY lines: the first stage's files, its
  // install, then the last stage's sources (a source it stops copying fails the start below).
  const [dependencyStage, runtimeStage] = dockerfile.split(/^FROM .*$/m).slice(1) as [string, string]
  const copies = (stage: string): string[] => [...stage.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((match) => match[1]!.split(' '))
  const image = await mkdtemp(join(tmpdir(), 'realtime-image-'))
  t.after(async () => await rm(image, { recursive: true, force: true }))
  const copy = async (path: string): Promise<void> => {
    await mkdir(dirname(join(image, path)), { recursive: true })
    await cp(new URL(path, root), join(image, path), { recursive: true, filter: (source) => !source.includes('node_modules') })
  }
  for (const path of copies(dependencyStage)) await copy(path)
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: image, timeout: 300_000 })
  assert.ok(!existsSync(join(image, 'node_modules', 'playwright-core')), 'no test tooling in the image')
  assert.ok(!existsSync(join(image, 'node_modules', 'typescript')), 'no compiler in the image')
  for (const path of copies(runtimeStage)) await copy(path)

  const port = await freePort()
  const child = spawn(process.execPath, cmd.slice(1), { cwd: image, env: { ...process.env, NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1' }, stdio: 'ignore' })
  t.after(() => child.kill('SIGKILL'))
  await waitForHttp(`http://127.0.0.1:${port}/health/live`, 30_000)
  const health = await run(process.execPath, healthcheck.slice(1).map((arg) => arg.replace('3000', String(port))))
  assert.equal(health.stderr, '')
  assert.match(await (await fetch(`http://127.0.0.1:${port}/realtime-client.js`)).text(), /realtime\.v1/)
  // The AsyncAPI document's YAML serializer is a runtime dependency, installed with the rest.
  assert.match(await (await fetch(`http://127.0.0.1:${port}/asyncapi.yaml`)).text(), /^asyncapi: 3\.0\.0$/m)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})
