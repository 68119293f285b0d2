import assert from 'node:assert/strict'
import { copyFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { WebSocket, type ClientOptions } from 'ws'
import { loadConfig } from '../../app/config.js'
import { TestClient } from '../helpers/client.js'
import { eventually } from '../helpers/server.js'
import {
  devCertificates, handshakeError, httpsGet, peerFingerprint, runApp, sample, sClient, startApp, tempDir,
  type DevCertificates, type TlsAppProcess
} from '../helpers/tls.js'

/** The files the app is pointed at, which a test overwrites to rotate. */
interface ServedFiles {
  certFile: string
  keyFile: string
}

function serve (t: TestContext, certificates: DevCertificates): ServedFiles {
  const dir = tempDir(t, 'frt-served-')
  const served = { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') }
  install(served, certificates.certFile, certificates.keyFile)
  return served
}

function install (served: ServedFiles, certFile: string, keyFile: string): void {
  copyFileSync(certFile, served.certFile)
  copyFileSync(keyFile, served.keyFile)
}

function tlsEnv (files: ServedFiles, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { TLS_CERT_FILE: files.certFile, TLS_KEY_FILE: files.keyFile, ...env }
}

const wss = (app: TlsAppProcess): string => `wss://127.0.0.1:${app.port}/ws`

async function metrics (app: TlsAppProcess, ca: Buffer): Promise<string> {
  return (await httpsGet(`${app.url}/metrics`, ca)).body
}

/** Opens a WebSocket and resolves with the 101's headers once it is open. */
async function openSocket (t: TestContext, url: string, options: ClientOptions = {}): Promise<{ socket: WebSocket, headers: Record<string, string | string[] | undefined> }> {
  const socket = new WebSocket(url, ['realtime.v1'], options)
  t.after(() => socket.terminate())
  let headers: Record<string, string | string[] | undefined> = {}
  socket.once('upgrade', (response) => { headers = response.headers })
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  return { socket, headers }
}

test('https and wss: a client trusting the dev CA echoes over wss://, GET /health/live carries HSTS, the 101 does not', async (t) => {
  const certificates = await devCertificates(t)
  const app = await startApp(t, tlsEnv(serve(t, certificates)))
  assert.match(app.url, /^https:\/\//)

  const client = await TestClient.connect(t, wss(app), { ca: certificates.ca })
  assert.deepEqual((await client.request('echo', { text: 'over wss' })).data, { text: 'over wss' })

  const live = await httpsGet(`${app.url}/health/live`, certificates.ca)
  assert.equal(live.status, 200)
  assert.equal(live.headers['strict-transport-security'], 'max-age=31536000')

  const { headers } = await openSocket(t, wss(app), { ca: certificates.ca })
  assert.equal(headers['strict-transport-security'], undefined, 'no HSTS on the 101')
  // Trust is the CA's: without it the certificate is refused.
  await assert.rejects(openSocket(t, wss(app)), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' })

  // The certificate the app logs at start is the one it serves.
  const logged = app.logs().find((line) => line.msg === 'tls.certificate')
  assert.equal(logged?.fingerprint256, certificates.fingerprint256)
  assert.equal(await peerFingerprint(app.port, certificates.ca), certificates.fingerprint256)
})

test('TLS versions and ciphers: 1.0 and 1.1 refused for their version even under node --tls-min-v1.0; 1.2 with ECDHE AEAD in the server order; 1.3', async (t) => {
  const certificates = await devCertificates(t)
  // The process default would allow TLS 1.0: the app's own minimum must be what refuses it.
  const app = await startApp(t, tlsEnv(serve(t, certificates), { NODE_OPTIONS: '--tls-min-v1.0' }))
  await assertTlsPolicy(app.port, certificates)

  // A Node client that offers nothing newer than TLS 1.0.
  const refused = await handshakeError(app.port, { ca: certificates.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' })
  assert.equal(refused, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')
})

/** What the server accepts and refuses, checked with `openssl s_client` (also after a reload). */
async function assertTlsPolicy (port: number, certificates: DevCertificates): Promise<void> {
  // SECLEVEL=0 lets this client offer TLS 1.0/1.1 at all: the refusal must come from the server.
  for (const version of ['-tls1', '-tls1_1']) {
    const old = await sClient(port, certificates.caFile, [version, '-cipher', 'DEFAULT@SECLEVEL=0'])
    assert.notEqual(old.status, 0, `${version} is refused`)
    assert.match(old.output, /Cipher is \(NONE\)/, `${version}: no cipher was agreed`)
    // Alert 70, protocol_version: refused for its version, not for want of a common cipher.
    assert.match(old.output, /alert protocol version/, `${version} is refused for its version`)
  }
  const tls12 = await sClient(port, certificates.caFile, ['-tls1_2'])
  assert.equal(tls12.status, 0, tls12.output)
  assert.match(tls12.output, /New, TLSv1\.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/)
  assert.match(tls12.output, /Verify return code: 0 \(ok\)/)
  const tls13 = await sClient(port, certificates.caFile, ['-tls1_3'])
  assert.equal(tls13.status, 0, tls13.output)
  assert.match(tls13.output, /New, TLSv1\.3, Cipher is TLS_AES_256_GCM_SHA384/)
  // CBC with SHA-1 is in Node's default list (through HIGH), not in the app's.
  const cbc = await sClient(port, certificates.caFile, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA'])
  assert.notEqual(cbc.status, 0)
  assert.match(cbc.output, /Cipher is \(NONE\)/)
  // The client prefers ChaCha20; the server's order (AES-GCM first) decides.
  const order = await sClient(port, certificates.caFile, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256'])
  assert.match(order.output, /Cipher is ECDHE-ECDSA-AES128-GCM-SHA256/)
}

test('rotation under 50 open wss connections: SIGHUP serves a new certificate to new handshakes and closes nothing; a bad pair is refused, logged and counted, the last good one keeps serving', async (t) => {
  const first = await devCertificates(t)
  const second = await devCertificates(t, first)
  const third = await devCertificates(t, first)
  assert.notEqual(second.fingerprint256, first.fingerprint256)
  const served = serve(t, first)
  const app = await startApp(t, tlsEnv(served, { NODE_OPTIONS: '--tls-min-v1.0' }))
  const ca = first.ca
  const clients = await Promise.all(Array.from({ length: 50 }, async () => await TestClient.connect(t, wss(app), { ca })))
  let closes = 0
  for (const client of clients) client.socket.once('close', () => { closes++ })
  assert.equal(await peerFingerprint(app.port, ca), first.fingerprint256)
  assert.equal(sample(await metrics(app, ca), 'tls_certificate_reloads_total{outcome="error"}'), 0)
  const everyoneAnswers = async (text: string): Promise<void> => {
    const replies = await Promise.all(clients.map(async (client) => await client.request('echo', { text })))
    assert.deepEqual(replies.map((reply) => reply.data), clients.map(() => ({ text })))
  }

  install(served, second.certFile, second.keyFile)
  app.child.kill('SIGHUP')
  await eventually(() => app.logs().some((line) => line.msg === 'tls.certificate' && line.fingerprint256 === second.fingerprint256), 5_000, 'the second certificate served')
  assert.equal(await peerFingerprint(app.port, ca), second.fingerprint256)
  await everyoneAnswers('after rotation')
  assert.equal(closes, 0)
  const afterRotation = await metrics(app, ca)
  assert.equal(sample(afterRotation, 'tls_certificate_reloads_total{outcome="ok"}'), 1)
  const expiry = sample(afterRotation, 'tls_certificate_expiry_timestamp_seconds') ?? 0
  assert.ok(expiry > Date.now() / 1000 + 300 * 86_400, 'the new certificate expires in about 397 days')
  // The reload keeps the version floor and the cipher list, not only the certificate.
  await assertTlsPolicy(app.port, second)
  const newcomer = await TestClient.connect(t, wss(app), { ca })
  assert.deepEqual((await newcomer.request('echo', { text: 'new' })).data, { text: 'new' })

  // Bad pairs: a key that is not the certificate's, a certificate that is not PEM, a missing file.
  const bad: Array<{ prepare: () => void, reason: RegExp }> = [
    { prepare: () => install(served, third.certFile, second.keyFile), reason: /TLS_KEY_FILE ".*" is not the key of the certificate in TLS_CERT_FILE/ },
    { prepare: () => writeFileSync(served.certFile, 'not a certificate\n'), reason: /TLS_CERT_FILE ".*" holds no PEM certificate/ },
    { prepare: () => rmSync(served.certFile), reason: /TLS_CERT_FILE ".*" cannot be read \(ENOENT\)/ }
  ]
  for (const [index, { prepare, reason }] of bad.entries()) {
    prepare()
    app.child.kill('SIGHUP')
    await eventually(() => app.logs().filter((line) => line.msg === 'tls.reload.refused').length === index + 1, 5_000, 'the refusal logged')
    const refusal = app.logs().filter((line) => line.msg === 'tls.reload.refused')[index]
    assert.equal(refusal?.level, 50, 'logged as an error')
    assert.match(String(refusal?.reason), reason)
    assert.equal(refusal?.fingerprint256, second.fingerprint256, 'names the certificate that keeps serving')
    assert.equal(sample(await metrics(app, ca), 'tls_certificate_reloads_total{outcome="error"}'), index + 1)
    assert.equal(await peerFingerprint(app.port, ca), second.fingerprint256, 'the last good certificate still serves')
  }
  assert.doesNotMatch(app.output(), /PRIVATE KEY|BEGIN CERTIFICATE/, 'no key or certificate material in the logs')
  await everyoneAnswers('after refusals')
  assert.equal(closes, 0)
  assert.equal(sample(await metrics(app, ca), 'tls_certificate_reloads_total{outcome="ok"}'), 1)
})

test('TLS_CA_FILE is sent after the certificate; TLS_HSTS_MAX_AGE_SECONDS sets the header; the variables are checked', async (t) => {
  assert.throws(() => loadConfig({ TLS_CA_FILE: '/ca.crt' }), /TLS_CA_FILE is set without TLS_CERT_FILE and TLS_KEY_FILE/)
  assert.throws(() => loadConfig({ TLS_KEY_FILE: '/server.key' }), /only TLS_KEY_FILE is set/)
  assert.throws(() => loadConfig({ TLS_CERT_FILE: '/a', TLS_KEY_FILE: '/b', TLS_HSTS_MAX_AGE_SECONDS: '-1' }), /TLS_HSTS_MAX_AGE_SECONDS must be an integer/)
  assert.deepEqual(loadConfig({ TLS_CERT_FILE: '/a', TLS_KEY_FILE: '/b' }).tls, { certFile: '/a', keyFile: '/b', caFile: undefined, hstsMaxAgeSeconds: 31_536_000 })

  const certificates = await devCertificates(t)
  const app = await startApp(t, tlsEnv(serve(t, certificates), { TLS_CA_FILE: certificates.caFile, TLS_HSTS_MAX_AGE_SECONDS: '0' }))
  const shown = await sClient(app.port, certificates.caFile, ['-showcerts'])
  assert.equal(shown.output.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2, 'the certificate, then the CA file')
  assert.match(shown.output, / 1 s:CN = fastify-realtime development CA/)
  assert.equal((await httpsGet(`${app.url}/health/live`, certificates.ca)).headers['strict-transport-security'], 'max-age=0')
})

test('a certificate pair that cannot be served stops the app at start with exit 1 and one line', async (t) => {
  const certificates = await devCertificates(t)
  const other = await devCertificates(t, certificates)
  const garbage = join(tempDir(t), 'garbage.pem')
  writeFileSync(garbage, 'not a key\n')
  const cases: Array<{ env: NodeJS.ProcessEnv, line: RegExp }> = [
    { env: { TLS_CERT_FILE: join(certificates.dir, 'missing.crt'), TLS_KEY_FILE: certificates.keyFile }, line: /^configuration error: TLS_CERT_FILE ".*missing\.crt" cannot be read \(ENOENT\)$/ },
    { env: { TLS_CERT_FILE: certificates.certFile, TLS_KEY_FILE: other.keyFile }, line: /^configuration error: TLS_KEY_FILE ".*" is not the key of the certificate in TLS_CERT_FILE ".*"$/ },
    { env: { TLS_CERT_FILE: certificates.certFile, TLS_KEY_FILE: garbage }, line: /^configuration error: TLS_KEY_FILE ".*garbage\.pem" holds no PEM private key$/ },
    { env: { TLS_CERT_FILE: certificates.certFile }, line: /^configuration error: TLS_CERT_FILE and TLS_KEY_FILE go together, only TLS_CERT_FILE is set$/ }
  ]
  const results = await Promise.all(cases.map(async ({ env }) => await runApp(env)))
  for (const [index, result] of results.entries()) {
    const { line } = cases[index] as { line: RegExp }
    assert.equal(result.status, 1, `case ${index} exits 1`)
    const lines = (result.stdout + result.stderr).trim().split('\n')
    assert.equal(lines.length, 1, `case ${index} writes one line: ${result.stdout}${result.stderr}`)
    assert.match(lines[0] as string, line)
  }
})

test('a plain ws:// client on the TLS port gets a TLS error; the server and a wss bystander carry on', async (t) => {
  const certificates = await devCertificates(t)
  const app = await startApp(t, tlsEnv(serve(t, certificates)))
  const bystander = await TestClient.connect(t, wss(app), { ca: certificates.ca })

  const plain = new WebSocket(`ws://127.0.0.1:${app.port}/ws`, ['realtime.v1'])
  t.after(() => plain.terminate())
  const error = await new Promise<NodeJS.ErrnoException>((resolve) => plain.once('error', resolve))
  assert.match(String(error.code ?? error.message), /ECONNRESET|socket hang up/)
  assert.equal(plain.readyState, WebSocket.CLOSED)

  assert.equal(app.child.exitCode, null, 'the app is still running')
  assert.deepEqual((await bystander.request('echo', { text: 'still here' })).data, { text: 'still here' })
  assert.equal((await httpsGet(`${app.url}/health/live`, certificates.ca)).status, 200)
})

test('handshake rate: wss upgrades against ws upgrades, sequential and 20 at a time (reported, loosely checked)', async (t) => {
  const certificates = await devCertificates(t)
  const [secure, plain] = await Promise.all([startApp(t, tlsEnv(serve(t, certificates))), startApp(t, {})])
  assert.equal((await fetch(`${plain.url}/health/live`)).headers.get('strict-transport-security'), null, 'no HSTS over plain HTTP')
  const UPGRADES = 300
  const upgrade = async (url: string, options: ClientOptions): Promise<void> => {
    const socket = new WebSocket(url, ['realtime.v1'], options)
    await new Promise((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
    })
    socket.terminate()
  }
  const measure = async (url: string, options: ClientOptions, concurrency: number): Promise<number> => {
    let next = 0
    const started = performance.now()
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < UPGRADES) {
        next++
        await upgrade(url, options)
      }
    }))
    return UPGRADES / ((performance.now() - started) / 1000)
  }
  const wsUrl = `ws://127.0.0.1:${plain.port}/ws`
  // Warm both (JIT, the client bundle) before timing.
  await measure(wsUrl, {}, 20)
  await measure(wss(secure), { ca: certificates.ca }, 20)
  const rates: Record<string, number> = {}
  for (const concurrency of [1, 20]) {
    rates[`ws x${concurrency}`] = await measure(wsUrl, {}, concurrency)
    rates[`wss x${concurrency}`] = await measure(wss(secure), { ca: certificates.ca }, concurrency)
  }
  for (const [name, rate] of Object.entries(rates)) t.diagnostic(`${name}: ${rate.toFixed(0)} upgrades/s`)
  t.diagnostic(`wss/ws sequential: ${((rates['wss x1'] ?? 0) / (rates['ws x1'] ?? 1)).toFixed(2)}, 20 at a time: ${((rates['wss x20'] ?? 0) / (rates['ws x20'] ?? 1)).toFixed(2)}`)
  for (const rate of Object.values(rates)) assert.ok(rate > 10, 'each mode completes its upgrades at more than 10/s')
})
