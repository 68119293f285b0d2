import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { Readable } from 'node:stream'
import type { TestContext } from 'node:test'

/** The example app's process, as `npm start` runs it. */
export interface AppProcess {
  child: ChildProcessByStdio<null, Readable, null>
  /** `http://127.0.0.1:<port>` */
  url: string
  /** Everything the app wrote to stdout so far. */
  output: () => string
}

/** `npm start`'s command line, read from package.json so the test runs what users run. */
function startCommand (): string[] {
  const scripts = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>
  const [program, ...args] = (scripts.start as string).split(' ')
  if (program !== 'node') throw new Error(`npm start should run node, it runs: ${scripts.start}`)
  return args
}

/** How to run the app beyond its environment. */
export interface AppProcessOptions {
  /** The open-files limit (`ulimit -n`) the app runs under, set by a shell before node starts. */
  openFilesLimit?: number
}

/** Starts the example app on an ephemeral loopback port and waits until it listens. */
export async function startAppProcess (t: TestContext, env: NodeJS.ProcessEnv, options: AppProcessOptions = {}): Promise<AppProcess> {
  const [program, args] = options.openFilesLimit === undefined
    ? [process.execPath, startCommand()]
    : ['sh', ['-c', `ulimit -n ${options.openFilesLimit} && exec "$0" "$@"`, process.execPath, ...startCommand()]]
  const child = spawn(program, args, {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start: ${output}`)), 20_000)
    const look = (): void => {
      const match = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/.exec(output)
      if (match?.[1] === undefined) return
      clearTimeout(timer)
      child.stdout.off('data', look)
      resolve(match[1])
    }
    child.stdout.on('data', look)
    child.once('exit', (code) => reject(new Error(`app exited with ${code}: ${output}`)))
  })
  return { child, url, output: () => output }
}
