import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { cp, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { freePort } from '../helpers/redis.js'
import { waitForHttp } from '../helpers/load-balancer.js'

const run = promisify(execFile)
const root = new URL('../../', import.meta.url)

/** The `bin/` folder of the pinned Node of `major`, installed by the script the suite uses. */
async function pinnedNode (major: string): Promise<string> {
  const { stdout } = await run('sh', ['scripts/install-node.sh', major], { cwd: root, timeout: 300_000 })
  return stdout.trim()
}

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

test('Dockerfile: on the Node it pins, its production-only install runs the app as its CMD says, healthy, and SIGTERM exits 0', async (t) => {
  const dockerfile = await readFile(new URL('Dockerfile', root), 'utf8')
  assert.match(dockerfile, /npm ci --omit=dev/)
  // Every stage on one exact official Node, a major that npm test runs the whole suite on.
  const versions = [...dockerfile.matchAll(/^FROM node:(\d+\.\d+\.\d+)-bookworm-slim\b/gm)].map((match) => match[1] as string)
  assert.equal(versions.length, dockerfile.match(/^FROM /gm)?.length, 'every FROM names node:<exact version>-bookworm-slim')
  assert.equal(new Set(versions).size, 1, 'both stages run the same Node')
  const version = versions[0] as string
  const major = version.split('.')[0] as string
  const { scripts } = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { scripts: Record<string, string> }
  const fullSuiteMajors = Object.entries(scripts)
    .filter(([name]) => scripts.test?.includes(`npm run ${name}`))
    .flatMap(([, script]) => /with-node\.sh (\d+) npm run test:node$/.exec(script)?.[1] ?? [])
  assert.ok(fullSuiteMajors.includes(major), `npm test runs the whole suite on Node ${major} (it runs it on ${fullSuiteMajors.join(', ') || 'none'})`)
  // The install and the app below run on that Node, not on the one running this test.
  const bin = await pinnedNode(major)
  const node = join(bin, 'node')
  assert.equal((await run(node, ['--version'])).stdout.trim(), `v${version}`, 'scripts/install-node.sh pins the version the image uses')
  const onPinnedNode = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` }
  // `npm version` with no argument prints the versions of the runtime npm itself is running on.
  const npmRuntime = JSON.parse((await run('npm', ['version', '--json'], { cwd: root, env: onPinnedNode })).stdout) as { node?: string }
  assert.equal(npmRuntime.node, version, 'npm itself runs on the pinned Node')
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
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: image, env: onPinnedNode, timeout: 300_000 })
  assert.ok(!existsSync(join(image, 'node_modules', 'playwright-core')), 'no test tooling in the image')
  assert.ok(!existsSync(join(image, 'node_modules', 'typescript')), 'no compiler in the image')
  for (const path of copies(runtimeStage)) await copy(path)

  const port = await freePort()
  const child = spawn(node, cmd.slice(1), { cwd: image, env: { ...onPinnedNode, NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1' }, stdio: 'ignore' })
  t.after(() => child.kill('SIGKILL'))
  await waitForHttp(`http://127.0.0.1:${port}/health/live`, 30_000)
  const health = await run(node, healthcheck.slice(1).map((arg) => arg.replace('3000', String(port))))
  assert.equal(health.stderr, '')
  // The app's own report of its runtime (prom-client's default metrics).
  assert.match(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), new RegExp(`^nodejs_version_info\\{version="v${version.replaceAll('.', '\\.')}"`, 'm'))
  assert.match(await (await fetch(`http://127.0.0.1:${port}/realtime-client.js`)).text(), /realtime\.v1/)
  // The AsyncAPI document's YAML serializer is a runtime dependency, installed with the rest.
  assert.match(await (await fetch(`http://127.0.0.1:${port}/asyncapi.yaml`)).text(), /^asyncapi: 3\.0\.0$/m)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})
