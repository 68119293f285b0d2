import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

/** An NGINX template with the variables the official image's envsubst would fill in; others stay. */
export async function renderNginxTemplate (path: URL, variables: Record<string, string>): Promise<string> {
  const template = await readFile(path, 'utf8')
  return template.replace(/\$\{(\w+)\}/g, (whole, name: string) => variables[name] ?? whole)
}

/**
 * A prefix directory for `nginx -p`: a main configuration around `snippet`, as the image's
 * /etc/nginx/nginx.conf includes conf.d, with every path NGINX writes inside it. Removed after
 * the test.
 */
export async function nginxPrefix (t: Pick<TestContext, 'after'>, snippet: string): Promise<string> {
  const prefix = await mkdtemp(join(tmpdir(), 'realtime-nginx-'))
  t.after(async () => await rm(prefix, { recursive: true, force: true }))
  await writeFile(join(prefix, 'realtime.conf'), snippet)
  await writeFile(join(prefix, 'nginx.conf'), [
    'pid nginx.pid;',
    'error_log stderr warn;',
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  client_body_temp_path tmp-body; proxy_temp_path tmp-proxy; fastcgi_temp_path tmp-fastcgi;',
    '  uwsgi_temp_path tmp-uwsgi; scgi_temp_path tmp-scgi;',
    '  include realtime.conf;',
    '}'
  ].join('\n'))
  return prefix
}
