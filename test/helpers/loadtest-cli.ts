import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { Report } from '../../loadtest/report/model.js'

/** The example app with a budget high enough for load, and short drains. */
export const LOADED_APP_ENV = { WS_MESSAGES_PER_SECOND: '100000', WS_DRAIN_MS: '200' }
/** No run here should take long: a hung CLI fails the test instead of the whole suite. */
const CLI_LIMIT_MS = 45_000

/** How one run of the load tester ended. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
  elapsedMs: number
}

/** Runs the CLI as users do (`npm run loadtest -- …` is this command line). */
export async function runCli (args: string[], options: { interruptAfterMs?: number } = {}): Promise<CliRun> {
  const started = performance.now()
  const child = spawn(process.execPath, ['--import', 'tsx', 'loadtest/cli.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const killer = setTimeout(() => child.kill('SIGKILL'), CLI_LIMIT_MS)
  const interrupter = options.interruptAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGINT'), options.interruptAfterMs)
  const [code] = await once(child, 'close') as [number | null]
  clearTimeout(killer)
  clearTimeout(interrupter)
  return { code, stdout, stderr, elapsedMs: performance.now() - started }
}

/** A directory for a run's reports, removed when the test ends. */
export async function tempDir (t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'realtime-loadtest-'))
  t.after(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

/** The JSON report a run wrote with `--json`. */
export async function readReport (path: string): Promise<Report> {
  return JSON.parse(await readFile(path, 'utf8')) as Report
}
