import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

/*
 * What a user of the published package gets: the tarball `npm pack` makes, installed into an
 * empty project without the network, and the README's example compiled against it by
 * TypeScript 6 and 7 with `strict` and `skipLibCheck: false` (so the package's own .d.ts are
 * checked too), then run.
 */

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const compilers = [
  { name: 'TypeScript 6', bin: join(root, 'node_modules/typescript/bin/tsc'), outDir: 'out6' },
  { name: 'TypeScript 7', bin: join(root, 'node_modules/typescript7/bin/tsc'), outDir: 'out7' }
]
/** What the README tells a user to install besides the package, for the server and a Node client. */
const USER_INSTALLS = ['fastify', 'typebox', 'ws', '@types/ws', '@types/node']

/** Files under `dir`, relative to it. */
async function filesUnder (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true })
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(dir, join(entry.parentPath, entry.name)))
}

/**
 * True when `dist/` holds exactly what the sources compile to and is newer than all of them, as
 * right after `npm run build` (which `npm test` runs first): packing it as is saves a second build.
 */
async function distIsFresh (): Promise<boolean> {
  const dist = join(root, 'dist')
  if (!existsSync(dist)) return false
  const sources = (await Promise.all(['plugin', 'loadtest'].map(async (dir) => (await filesUnder(join(root, dir))).map((file) => join(dir, file)))))
    .flat().filter((file) => file.endsWith('.ts'))
  const built = (await filesUnder(dist)).filter((file) => file.endsWith('.js'))
  if (built.length !== sources.length) return false
  const inputs = [...sources, 'tsconfig.json', 'tsconfig.build.json']
  const newestInput = Math.max(...await Promise.all(inputs.map(async (file) => (await stat(join(root, file))).mtimeMs)))
  for (const source of sources) {
    const output = join(dist, source.replace(/\.ts$/, '.js'))
    if (!existsSync(output) || (await stat(output)).mtimeMs < newestInput) return false
  }
  return true
}

/** A README block whose first line is `// <name>`. */
function readmeBlock (readme: string, name: string): string {
  const block = new RegExp(`\`\`\`ts\\n(// ${name.replace('.', '\\.')}\\n[\\s\\S]*?)\`\`\``).exec(readme)?.[1]
  assert.ok(block !== undefined, `README.md has a \`\`\`ts block starting with // ${name}`)
  return block
}

/** Declarations with comments and string literals taken out, so only types are left to read. */
function declarationCode (text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, ' '))
    .replace(/\/\/.*$/gm, '')
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, "''")
}

test('the packed package installs offline; the README example compiles with TypeScript 6 and 7 and runs', async (t) => {
  const work = await mkdtemp(join(tmpdir(), 'realtime-package-'))
  t.after(async () => await rm(work, { recursive: true, force: true }))

  const started = performance.now()
  const lap = (step: string): void => t.diagnostic(`${step}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  // `npm pack` runs `prepack` (the build) unless dist/ is already what the sources build to.
  const fresh = await distIsFresh()
  await run('npm', ['pack', '--pack-destination', work, '--silent', ...(fresh ? ['--ignore-scripts'] : [])], { cwd: root, timeout: 180_000 })
  const tarball = (await readdir(work)).find((file) => file.endsWith('.tgz'))
  assert.ok(tarball !== undefined, 'npm pack wrote a tarball')
  lap(fresh ? 'packed the fresh dist/' : 'built and packed')

  const project = join(work, 'project')
  const installed = join(project, 'node_modules', 'fastify-realtime')
  await mkdir(installed, { recursive: true })
  await run('tar', ['-xzf', join(work, tarball), '-C', installed, '--strip-components=1'])
  const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>
    exports: Record<string, { types: string, default: string }>
    bin: Record<string, string>
  }

  // What was packed: the entry points, no sources or tests, and nothing a source no longer makes.
  const packed = await filesUnder(installed)
  for (const entry of Object.values(manifest.exports)) {
    assert.ok(packed.includes(join(entry.types)), `${entry.types} is packed`)
    assert.ok(packed.includes(join(entry.default)), `${entry.default} is packed`)
  }
  for (const bin of Object.values(manifest.bin)) assert.ok(packed.includes(join(bin)), `${bin} is packed`)
  assert.deepEqual(packed.filter((file) => !file.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE'].includes(file)), [])
  const stale = packed.filter((file) => file.endsWith('.js') && !existsSync(join(root, file.replace(/^dist\//, '').replace(/\.js$/, '.ts'))))
  assert.deepEqual(stale, [], 'every packed module is built from a source that exists')

  // Installed as npm would, offline: the package's dependencies and what the user adds, linked
  // from this repository's node_modules. ioredis, an optional peer for the Redis broker only, is
  // left out: the README's example must not need it.
  for (const name of new Set([...Object.keys(manifest.dependencies), ...USER_INSTALLS])) {
    const link = join(project, 'node_modules', name)
    await mkdir(dirname(link), { recursive: true })
    await symlink(join(root, 'node_modules', name), link, 'dir')
  }
  // The bin runs from the install, on the package's own dependencies.
  for (const [name, bin] of Object.entries(manifest.bin)) {
    const help = await run(process.execPath, [join(installed, bin), '--help'], { cwd: project, timeout: 15_000 })
    assert.match(help.stdout, new RegExp(`^Usage: ${name} `), `${name} --help`)
  }

  const readme = await readFile(join(root, 'README.md'), 'utf8')
  await writeFile(join(project, 'server.ts'), readmeBlock(readme, 'server.ts'))
  await writeFile(join(project, 'client.ts'), readmeBlock(readme, 'client.ts'))
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'readme-example', private: true, type: 'module' }))
  await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      lib: ['ES2023'],
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      strict: true,
      skipLibCheck: false,
      types: ['node']
    },
    files: ['server.ts', 'client.ts']
  }, null, 2))

  // Both at once, and both heard from: a failure shows each compiler's own output.
  const rejections = await Promise.all(compilers.map(async ({ name, bin, outDir }) => {
    try {
      await run(process.execPath, [bin, '-p', 'tsconfig.json', '--outDir', outDir, '--pretty', 'false'], { cwd: project, timeout: 120_000 })
      lap(`compiled with ${name}`)
      return []
    } catch (err) {
      const { stdout = '', stderr = '' } = err as { stdout?: string, stderr?: string }
      return [`${name} rejected the README example against the packed package:\n${stdout}${stderr}`]
    }
  }))
  if (rejections.flat().length > 0) assert.fail(rejections.flat().join('\n'))

  // The server on a port the system picks (PORT=0), which its log line names.
  const server = spawn(process.execPath, [join('out6', 'server.js')], { cwd: project, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => server.kill('SIGKILL'))
  let serverOutput = ''
  server.stderr.on('data', (chunk: Buffer) => { serverOutput += chunk.toString() })
  const port = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the README server did not listen within 15 s:\n${serverOutput}`)), 15_000)
    server.stdout.on('data', (chunk: Buffer) => {
      serverOutput += chunk.toString()
      const listening = /Server listening at http:\/\/[^\s"]+:(\d+)/.exec(serverOutput)
      if (listening !== null) {
        clearTimeout(timer)
        resolve(listening[1] as string)
      }
    })
    server.once('exit', (code) => reject(new Error(`the README server exited with ${String(code)}:\n${serverOutput}`)))
  })

  // Each compiler's client, in turn: a typed subscription and request, a line printed, then the
  // process ends by itself once the client is closed.
  for (const { name, outDir } of compilers) {
    const client = await run(process.execPath, [join(outDir, 'client.js')], { cwd: project, env: { ...process.env, PORT: port }, timeout: 15_000 })
    assert.match(client.stdout, /^published at \d+-\d+, heard "lobby: hello", 1 in the room\n$/, `${name}'s client`)
  }
  server.kill('SIGTERM')
  await once(server, 'exit')
  lap('ran the server and both clients')

  // The public types use no `any`: a user's strict code gets checked types, never a hole.
  const anys: string[] = []
  for (const file of packed.filter((path) => path.startsWith('dist/plugin/') && path.endsWith('.d.ts'))) {
    const lines = declarationCode(await readFile(join(installed, file), 'utf8')).split('\n')
    lines.forEach((line, index) => { if (/\bany\b/.test(line)) anys.push(`${file}:${index + 1}: ${line.trim()}`) })
  }
  assert.deepEqual(anys, [], 'no `any` in the published declarations')
})
