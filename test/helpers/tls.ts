import { execFile, spawn, type ChildProcessByStdio } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { get } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import type { TestContext } from 'node:test'
import { connect, type ConnectionOptions } from 'node:tls'
import { fileURLToPath } from 'node:url'

const DEV_CERTS = fileURLToPath(new URL('../../scripts/dev-certs.sh', import.meta.url))

/** What `scripts/dev-certs.sh <dir>` wrote. */
export interface DevCertificates {
  dir: string
  caFile: string
  certFile: string
  keyFile: string
  /** `ca.crt`'s content, for a client's `ca` option. */
  ca: Buffer
  /** The server certificate's SHA-256 fingerprint, as `getPeerCertificate().fingerprint256` prints it. */
  fingerprint256: string
}

/** A new temporary directory, removed when the test ends. */
export function tempDir (t: TestContext, prefix = 'frt-tls-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Runs `scripts/dev-certs.sh` into a new temporary directory. With `ca`, that CA's files are
 * copied in first, so the new certificate (and its new key) is signed by the same CA.
 */
export async function devCertificates (t: TestContext, ca?: DevCertificates): Promise<DevCertificates> {
  const dir = tempDir(t)
  if (ca !== undefined) {
    copyFileSync(ca.caFile, join(dir, 'ca.crt'))
    copyFileSync(join(ca.dir, 'ca.key'), join(dir, 'ca.key'))
  }
  await run('bash', [DEV_CERTS, dir])
  const certFile = join(dir, 'server.crt')
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile,
    keyFile: join(dir, 'server.key'),
    ca: readFileSync(join(dir, 'ca.crt')),
    fingerprint256: new X509Certificate(readFileSync(certFile)).fingerprint256
  }
}

/** A program's exit status and everything it wrote to stdout and stderr. */
export interface Ran {
  status: number
  stdout: string
  stderr: string
}

/** Runs a program to its end (at most `timeoutMs`), with stdin closed. */
export async function run (program: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): Promise<Ran> {
  return await new Promise((resolve, reject) => {
    const child = execFile(program, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      if (err !== null && status === -1) reject(new Error(`${program} failed: ${err.message}\n${stderr}`))
      else resolve({ status, stdout, stderr })
    })
    child.stdin?.end()
  })
}

/** `openssl s_client` against a loopback port: the handshake, then a clean close on stdin's end. */
export async function sClient (port: number, caFile: string, args: string[]): Promise<Ran & { output: string }> {
  const ran = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, ...args], process.env, 10_000)
  return { ...ran, output: ran.stdout + ran.stderr }
}

/** The fingerprint of the certificate a new TLS handshake presents (after verifying it against `ca`). */
export async function peerFingerprint (port: number, ca: Buffer): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256)
      socket.end()
    })
    socket.once('error', reject)
  })
}

/** Connects with `options` and resolves to the handshake's error code, or rejects if it succeeds. */
export async function handshakeError (port: number, options: ConnectionOptions): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      socket.destroy()
      reject(new Error(`the handshake succeeded with ${socket.getProtocol() ?? 'unknown protocol'}`))
    })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
  })
}

/** An https GET trusting `ca`: the status, headers and body. */
export async function httpsGet (url: string, ca: Buffer): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> {
  return await new Promise((resolve, reject) => {
    get(url, { ca }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    }).once('error', reject)
  })
}

/** One sample's value in Prometheus text, or undefined when the series is absent. */
export function sample (metrics: string, series: string): number | undefined {
  const line = metrics.split('\n').find((candidate) => candidate.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** The example app's process, as `npm start` runs it, over TLS or not. */
export interface TlsAppProcess {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** `https://127.0.0.1:<port>` or `http://…` */
  url: string
  port: number
  /** Everything the app wrote to stdout so far. */
  output: () => string
  /** The JSON log lines written so far. */
  logs: () => Array<Record<string, unknown>>
}

/** `npm start`'s arguments to node, read from package.json so the test runs what users run. */
function startArgs (): string[] {
  const scripts = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).scripts as Record<string, string>
  const [program, ...args] = (scripts.start as string).split(' ')
  if (program !== 'node') throw new Error(`npm start should run node, it runs: ${scripts.start}`)
  return args
}

/** The environment `npm start` would see on an ephemeral loopback port, plus `env`. */
export function appEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env }
}

/** Starts the example app and waits until it listens on http:// or https://. */
export async function startApp (t: TestContext, env: NodeJS.ProcessEnv): Promise<TlsAppProcess> {
  const child = spawn(process.execPath, startArgs(), { env: appEnv(env), stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => child.kill('SIGKILL'))
  let output = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`app did not start: ${output}${stderr}`)), 20_000)
    const look = (): void => {
      const match = /"msg":"Server listening at (https?:\/\/127\.0\.0\.1:\d+)"/.exec(output)
      if (match?.[1] === undefined) return
      clearTimeout(timer)
      child.stdout.off('data', look)
      resolve(match[1])
    }
    child.stdout.on('data', look)
    child.once('exit', (code) => reject(new Error(`app exited with ${code}: ${output}${stderr}`)))
  })
  const logs = (): Array<Record<string, unknown>> => output.split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
  return { child, url, port: Number(new URL(url).port), output: () => output, logs }
}

/** Runs the app as `npm start` does when it is expected to stop by itself (a refused start). */
export async function runApp (env: NodeJS.ProcessEnv): Promise<Ran> {
  return await run(process.execPath, startArgs(), appEnv(env))
}
