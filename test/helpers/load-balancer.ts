import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

/** Runs `program args` in the foreground until the test ends; fails loudly if it is missing. */
export async function runProgram (t: Pick<TestContext, 'after'>, program: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildProcess> {
  const child = spawn(program, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
  t.after(async () => {
    if (child.exitCode !== null) return
    // SIGTERM: NGINX's master takes its workers down with it (SIGKILL would orphan them, and
    // they would hold this process's pipes open).
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3_000)
    await once(child, 'exit')
    clearTimeout(timer)
  })
  const failed = await Promise.race([
    once(child, 'error').then(([err]) => `${program} could not run (scripts/install-system-deps.sh installs it): ${(err as Error).message}`),
    once(child, 'exit').then(([code]) => `${program} exited with ${code}: ${output}`),
    sleep(300).then(() => undefined)
  ])
  if (failed !== undefined) throw new Error(failed)
  return child
}

/** Polls `url` until it answers at all, or fails after `timeoutMs`. */
export async function waitForHttp (url: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await fetch(url)
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(50)
    }
  }
}
