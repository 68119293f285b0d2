import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { WebSocket, type ClientOptions } from 'ws'
import { buildApp } from '../../app/app.js'
import type { ChatRoute } from '../../app/chat-route.js'
import { loadConfig } from '../../app/config.js'
import { parseOptions, UsageError } from '../../loadtest/args.js'
import { RealtimeClient, type WebSocketConstructor } from '../../plugin/client/index.js'
import { TestClient, upgradeStatus } from '../helpers/client.js'
import { nginxPrefix, renderNginxTemplate, runProgram } from '../helpers/load-balancer.js'
import { LOADED_APP_ENV, readReport, runCli, tempDir } from '../helpers/loadtest-cli.js'
import { freePort, startRedis } from '../helpers/redis.js'
import { launchChromium, openDemo } from '../helpers/browser.js'
import { eventually, within } from '../helpers/server.js'

const run = promisify(execFile)

/**
 * Where the test's clients connect from. Not 127.0.0.1, where the balancers' own connections to
 * the nodes come from: a node that reports this address got it from X-Forwarded-For.
 */
const CLIENT_ADDRESS = '127.0.0.2'

/** What scripts/dev-certs.sh wrote, as the balancers and clients take it. */
interface DevCerts {
  /** ca.crt, the file, and its PEM text for clients that take it as an option. */
  caFile: string
  ca: string
  /** server-chain.crt and server.key, as NGINX takes them. */
  chain: string
  key: string
  /** server.pem: the chain then the key, as HAProxy takes it. */
  pem: string
}

/** A development CA and a localhost certificate from scripts/dev-certs.sh, removed after the test. */
async function devCerts (t: TestContext): Promise<DevCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'realtime-certs-'))
  t.after(async () => await rm(dir, { recursive: true, force: true }))
  await run('scripts/dev-certs.sh', [dir])
  const caFile = join(dir, 'ca.crt')
  return { caFile, ca: await readFile(caFile, 'utf8'), chain: join(dir, 'server-chain.crt'), key: join(dir, 'server.key'), pem: join(dir, 'server.pem') }
}

/** What a node learnt of one request: the balancer's headers and what Fastify made of them. */
interface SeenRequest {
  url: string
  protocol: string
  ip: string
  forwardedProto: string | string[] | undefined
  forwardedFor: string | string[] | undefined
}

interface Node {
  app: FastifyInstance
  port: number
  /** host:port, as the balancers' configurations name the node. */
  address: string
  seen: SeenRequest[]
}

/**
 * The example app in this process, in plain HTTP, trusting the balancer on 127.0.0.1, with a
 * record of every request it received; on `port` when it restarts where clients will reconnect.
 */
async function startNode (t: TestContext, env: NodeJS.ProcessEnv, port = 0): Promise<Node> {
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'warn', WS_DRAIN_MS: '50', TRUST_PROXY: '127.0.0.1', ...env }))
  const seen: SeenRequest[] = []
  app.addHook('onRequest', async (request) => {
    seen.push({
      url: request.url,
      protocol: request.protocol,
      ip: request.ip,
      forwardedProto: request.headers['x-forwarded-proto'],
      forwardedFor: request.headers['x-forwarded-for']
    })
  })
  await app.listen({ port, host: '127.0.0.1' })
  t.after(() => app.close())
  const listening = (app.server.address() as { port: number }).port
  return { app, port: listening, address: `127.0.0.1:${listening}`, seen }
}

/** The WebSocket upgrades a node received. */
const upgrades = (node: Node): SeenRequest[] => node.seen.filter((request) => request.url.startsWith('/ws'))

interface Balancer {
  tlsPort: number
  httpPort: number
  /** `wss://127.0.0.1:<tlsPort>` */
  wss: string
}

/** deploy/haproxy.cfg as docker-compose.yml runs it: TLS on one port, plain HTTP redirecting on another. */
async function startHaproxy (t: TestContext, certs: DevCerts, nodes: string[]): Promise<Balancer> {
  const [tlsPort, httpPort] = [await freePort(), await freePort()]
  await runProgram(t, 'haproxy', ['-db', '-f', 'deploy/haproxy.cfg'], {
    LB_TLS_BIND: `127.0.0.1:${tlsPort}`,
    LB_TLS_PEM: certs.pem,
    LB_HTTPS_PORT: String(tlsPort),
    LB_BIND: `127.0.0.1:${httpPort}`,
    APP1_ADDR: nodes[0],
    APP2_ADDR: nodes[1] ?? nodes[0],
    APP3_ADDR: nodes[2] ?? nodes[0]
  })
  await untilAnswers(httpPort)
  return { tlsPort, httpPort, wss: `wss://127.0.0.1:${tlsPort}` }
}

/** One plain HTTP GET, redirects not followed. */
async function get (url: string): Promise<{ status: number, headers: IncomingHttpHeaders }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, (response) => {
      response.resume()
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Polls a plain HTTP port until it answers at all: a redirect is an answer. */
async function untilAnswers (port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await get(`http://127.0.0.1:${port}/health/live`)
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(50)
    }
  }
}

/** A `ws` WebSocket with TLS and socket options set, for clients that only take a constructor. */
function webSocketWith (options: ClientOptions): WebSocketConstructor {
  return class extends WebSocket {
    constructor (url: string, protocols?: string | string[]) {
      super(url, protocols, options)
    }
  }
}

/** `openssl s_client` against 127.0.0.1:`port`: its whole output once the handshake is done or refused. */
async function handshake (port: number, args: string[]): Promise<string> {
  const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  // No input: s_client ends once the handshake is over, either way.
  child.stdin.end()
  const killer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await once(child, 'close')
  clearTimeout(killer)
  return output
}

/** The refusals and the handshakes a TLS 1.2+ frontend with AEAD suites must give. */
async function assertTlsPolicy (port: number, certs: DevCerts): Promise<void> {
  for (const version of ['-tls1', '-tls1_1']) {
    // SECLEVEL=0 lets this client offer the old versions: the refusal must be the server's.
    const refused = await handshake(port, [version, '-cipher', 'DEFAULT@SECLEVEL=0'])
    assert.match(refused, /Cipher is \(NONE\)/, `${version} is refused`)
    assert.match(refused, /alert protocol version/, `${version} is refused for its version`)
  }
  const cbc = await handshake(port, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA'])
  assert.match(cbc, /Cipher is \(NONE\)/, 'a CBC suite is refused')
  for (const [flag, protocol] of [['-tls1_2', 'TLSv1.2'], ['-tls1_3', 'TLSv1.3']] as const) {
    const accepted = await handshake(port, [flag, '-CAfile', certs.caFile, '-verify_hostname', 'localhost', '-verify_return_error', '-alpn', 'h2,http/1.1'])
    assert.match(accepted, new RegExp(`New, ${protocol.replace('.', '\\.')}, Cipher is (?!\\(NONE\\))`), `${protocol} is accepted`)
    assert.match(accepted, /Verify return code: 0 \(ok\)/, 'the chain verifies against the development CA')
    assert.match(accepted, /ALPN protocol: http\/1\.1/, 'HTTP/1.1, not h2, for WebSocket upgrades')
  }
}

test('wss:// through HAProxy terminating TLS, 3 nodes and Redis: a node drained and restarted mid-broadcast, every client gets every message once, in order', async (t) => {
  const certs = await devCerts(t)
  const redis = await startRedis(t)
  const env = { REDIS_URL: redis.url, BROKER_HISTORY_SIZE: '100000', WS_DRAIN_MS: '600' }
  const nodes = await Promise.all([0, 1, 2].map(async () => await startNode(t, env)))
  const everyNode = [...nodes]
  const lb = await startHaproxy(t, certs, nodes.map((node) => node.address))
  // Until its health checks see every node up, HAProxy would send everyone to the first.
  await sleep(2_500)

  // The shipped client, trusting the development CA only; it reconnects and resumes by itself.
  const TrustingWebSocket = webSocketWith({ ca: certs.ca, localAddress: CLIENT_ADDRESS })
  const clients: Array<RealtimeClient<ChatRoute>> = []
  const timers: NodeJS.Timeout[] = []
  const stopSpeakers = (): void => { for (const timer of timers) clearInterval(timer) }
  // Registered before anything can fail: a client left open would keep reconnecting forever.
  t.after(() => {
    stopSpeakers()
    for (const client of clients) client.close()
  })
  const connect = (): RealtimeClient<ChatRoute> => {
    const client = new RealtimeClient<ChatRoute>(`${lb.wss}/ws`, { WebSocket: TrustingWebSocket, backoff: { minMs: 50, maxMs: 500 } })
    clients.push(client)
    return client
  }
  const track = (client: RealtimeClient<ChatRoute>): { reconnects: number } => {
    const counted = { reconnects: 0 }
    client.onState((state) => { if (state === 'reconnecting') counted.reconnects++ })
    return counted
  }
  const subscribers = Array.from({ length: 6 }, () => {
    const client = connect()
    return { client, counted: track(client), offsets: [] as string[], recoveryFailures: 0 }
  })
  await within(Promise.all(subscribers.map(async (subscriber) => await subscriber.client.subscribe('room:tls', (event) => subscriber.offsets.push(event.offset), {
    onRecoveryFailed: () => { subscriber.recoveryFailures++ }
  }))), 10_000, 'subscribing over wss:// through HAProxy')
  const speakers = [0, 1].map(() => {
    const client = connect()
    return { client, counted: track(client), sent: 0 }
  })
  for (const speaker of speakers) {
    timers.push(setInterval(() => {
      if (speaker.client.state !== 'open') return
      speaker.sent++
      speaker.client.request('say', { room: 'tls', text: `message ${speaker.sent}` }).catch(() => {})
    }, 20))
  }
  await sleep(1_000)
  const spread = nodes.map((node) => node.app.realtime.connectionCount)
  assert.ok(spread.every((count) => count >= 1), `every node holds clients, so messages cross nodes: ${spread.join(', ')}`)

  // A deploy of one node in the middle of the broadcast: it drains (1012) and comes back on its port.
  const drained = nodes[0]!
  const moved = drained.app.realtime.connectionCount
  await drained.app.realtime.drain()
  await drained.app.close()
  nodes[0] = await startNode(t, env, drained.port)
  everyNode.push(nodes[0])
  await sleep(1_500)
  stopSpeakers()
  // Answers still in flight are counted before the stream is read.
  await sleep(500)

  const admin = new Redis(redis.url)
  t.after(() => admin.disconnect())
  const stream = (await admin.xrange('frt:{room:tls}:stream', '-', '+')).map(([id]) => id)
  admin.disconnect()
  const deadline = Date.now() + 10_000
  while (subscribers.some((subscriber) => subscriber.offsets.at(-1) !== stream.at(-1)) && Date.now() < deadline) await sleep(50)
  // Clients, then nodes, then Redis (the after-hooks would stop Redis first, and the nodes would log it).
  for (const client of clients) client.close()
  await Promise.all(nodes.map(async (node) => await node.app.close()))

  t.diagnostic(`published ${stream.length} messages; ${moved} clients moved off the drained node`)
  assert.ok(stream.length > 50, `a real broadcast: ${stream.length} messages`)
  for (const subscriber of subscribers) {
    assert.deepEqual(subscriber.offsets, stream, 'every message exactly once, in order')
    assert.equal(subscriber.recoveryFailures, 0, 'every resume recovered the whole gap')
  }
  const reconnects = [...subscribers, ...speakers].reduce((sum, { counted }) => sum + counted.reconnects, 0)
  assert.ok(moved >= 1 && reconnects >= moved, `the drained node's ${moved} clients reconnected (${reconnects} reconnects)`)
  const seen = everyNode.flatMap(upgrades)
  assert.ok(seen.length >= subscribers.length + speakers.length + moved)
  for (const upgrade of seen) {
    assert.deepEqual({ protocol: upgrade.protocol, ip: upgrade.ip }, { protocol: 'https', ip: CLIENT_ADDRESS }, 'every upgrade reached its node as https from the client')
  }
})

test('HAProxy: http:// answers 301 with the https:// location; nodes see X-Forwarded-Proto https and the client address, whatever the client claims; their health checks stay plain HTTP', async (t) => {
  const certs = await devCerts(t)
  const node = await startNode(t, {})
  const lb = await startHaproxy(t, certs, [node.address])

  const redirect = await get(`http://127.0.0.1:${lb.httpPort}/room/lobby?from=link`)
  assert.equal(redirect.status, 301)
  assert.equal(redirect.headers.location, `https://127.0.0.1:${lb.tlsPort}/room/lobby?from=link`, 'the TLS port, not the plain one')
  const plainUpgrade = await upgradeStatus(`ws://127.0.0.1:${lb.httpPort}/ws`)
  assert.equal(plainUpgrade.status, 301, 'a ws:// upgrade is not proxied either')
  assert.equal(plainUpgrade.headers.location, `https://127.0.0.1:${lb.tlsPort}/ws`)

  const client = await TestClient.connect(t, `${lb.wss}/ws`, {
    ca: certs.ca,
    localAddress: CLIENT_ADDRESS,
    headers: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'http' }
  })
  assert.deepEqual((await client.request('echo', { text: 'over wss' })).data, { text: 'over wss' })
  assert.deepEqual(upgrades(node), [{ url: '/ws', protocol: 'https', ip: CLIENT_ADDRESS, forwardedProto: 'https', forwardedFor: CLIENT_ADDRESS }],
    'one upgrade reached the node (the ws:// one did not), with the headers HAProxy set rather than the forged ones')

  await eventually(() => node.seen.some((request) => request.url === '/health/ready'), 3_000, "HAProxy's health check")
  for (const check of node.seen.filter((request) => request.url === '/health/ready')) {
    assert.deepEqual({ protocol: check.protocol, forwardedProto: check.forwardedProto }, { protocol: 'http', forwardedProto: undefined }, 'checked directly, in plain HTTP')
  }
})

test('HAProxy refuses TLS 1.0, TLS 1.1 and CBC suites; TLS 1.2 and 1.3 verify against the development CA and offer HTTP/1.1 only', async (t) => {
  const certs = await devCerts(t)
  const lb = await startHaproxy(t, certs, [`127.0.0.1:${await freePort()}`])
  await assertTlsPolicy(lb.tlsPort, certs)
})

test('NGINX (deploy/nginx/realtime-tls.conf.template): nginx -t accepts it, a wss:// echo goes through with X-Forwarded-Proto https, http:// redirects, TLS 1.0 and 1.1 are refused', async (t) => {
  const certs = await devCerts(t)
  const node = await startNode(t, {})
  const [tlsPort, httpPort] = [await freePort(), await freePort()]
  const snippet = await renderNginxTemplate(new URL('../../deploy/nginx/realtime-tls.conf.template', import.meta.url), {
    LB_TLS_PORT: `127.0.0.1:${tlsPort}`,
    LB_PORT: `127.0.0.1:${httpPort}`,
    LB_HTTPS_PORT: String(tlsPort),
    LB_TLS_CERT: certs.chain,
    LB_TLS_KEY: certs.key,
    APP1_ADDR: node.address,
    APP2_ADDR: node.address,
    APP3_ADDR: node.address
  })
  assert.doesNotMatch(snippet, /\$\{\w+\}/, 'every variable of the template is set')
  const prefix = await nginxPrefix(t, snippet)
  const checked = await run('nginx', ['-t', '-p', prefix, '-c', 'nginx.conf'])
  assert.match(checked.stderr, /test is successful/)
  await runProgram(t, 'nginx', ['-p', prefix, '-c', 'nginx.conf', '-g', 'daemon off;'])
  await untilAnswers(httpPort)

  const client = await TestClient.connect(t, `wss://127.0.0.1:${tlsPort}/ws`, { ca: certs.ca, localAddress: CLIENT_ADDRESS, headers: { 'x-forwarded-proto': 'http' } })
  assert.deepEqual((await client.request('echo', { text: 'via nginx' })).data, { text: 'via nginx' })
  assert.deepEqual(upgrades(node).map(({ protocol, ip, forwardedProto }) => ({ protocol, ip, forwardedProto })), [{ protocol: 'https', ip: CLIENT_ADDRESS, forwardedProto: 'https' }])
  const redirect = await get(`http://127.0.0.1:${httpPort}/room/lobby?from=link`)
  assert.equal(redirect.status, 301)
  assert.equal(redirect.headers.location, `https://127.0.0.1:${tlsPort}/room/lobby?from=link`)
  await assertTlsPolicy(tlsPort, certs)
})

test('Chromium loads the demo over https:// through HAProxy, trusting only the test key, and two pages chat over wss://', async (t) => {
  const certs = await devCerts(t)
  // Chromium trusts this one key (the SHA-256 of its SubjectPublicKeyInfo), no other certificate error.
  const { stdout } = await run('sh', ['-c', 'openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64', 'spki', certs.chain])
  const browser = await launchChromium(t, [`--ignore-certificate-errors-spki-list=${stdout.trim()}`])
  const node = await startNode(t, {})
  const lb = await startHaproxy(t, certs, [node.address])

  const alice = await openDemo(t, browser, `https://127.0.0.1:${lb.tlsPort}/`)
  const bob = await openDemo(t, browser, `https://127.0.0.1:${lb.tlsPort}/`)
  assert.equal(new URL(alice.url()).protocol, 'https:', 'no redirect or interstitial on the way')
  await alice.fill('#text', 'hello over wss')
  await alice.locator('#say button').click()
  for (const page of [alice, bob]) await page.locator('#messages li', { hasText: 'hello over wss' }).waitFor({ timeout: 5_000 })
  assert.equal(upgrades(node).length, 2)
  assert.ok(upgrades(node).every((upgrade) => upgrade.protocol === 'https' && upgrade.forwardedProto === 'https'), 'both pages upgraded over wss:// through HAProxy')
})

test('the load tester over wss:// through HAProxy: without --ca the development certificate is refused; with --ca a short echo run has 0 errors', async (t) => {
  const certs = await devCerts(t)
  const nodes = [await startNode(t, LOADED_APP_ENV), await startNode(t, LOADED_APP_ENV)]
  const lb = await startHaproxy(t, certs, nodes.map((node) => node.address))
  const dir = await tempDir(t)
  // A client refusing the certificate may already have written its upgrade request (a TLS 1.3
  // client finishes its side of the handshake before it checks the chain), so HAProxy can forward
  // it: the two runs are told apart by their URLs.
  const url = `${lb.wss}/ws?run=trusted`

  // connect, because it gives up after --duration and --timeout; echo would retry for 10 s.
  const untrusted = await runCli(['connect', '--url', `${lb.wss}/ws?run=untrusted`, '--connections', '1', '--duration', '200ms', '--timeout', '1s', '--workers', '1'])
  assert.equal(untrusted.code, 3, 'nothing in the system store vouches for the development CA')
  assert.match(untrusted.stderr, /no connection opened/)

  const trusted = await runCli(['echo', '--url', url, '--ca', certs.caFile, '--duration', '1s', '--connections', '4', '--pipeline', '2', '--workers', '1',
    '--threshold', 'errors==0', '--json', join(dir, 'report.json')])
  assert.equal(trusted.code, 0, trusted.stdout + trusted.stderr)
  const report = await readReport(join(dir, 'report.json'))
  assert.equal(report.metrics.errors, 0)
  assert.equal(report.metrics.connections, 4)
  assert.ok((report.counters.replies ?? 0) > 100, `${report.counters.replies} replies`)
  assert.equal(report.counters.connect_failures ?? 0, 0)
  const trustedUpgrades = nodes.flatMap(upgrades).filter((upgrade) => upgrade.url === '/ws?run=trusted')
  assert.equal(trustedUpgrades.length, 4, 'each connection upgraded once')
  assert.ok(trustedUpgrades.every((upgrade) => upgrade.protocol === 'https'), 'every connection reached a node through the TLS frontend')
})

test('the load tester\'s --ca: the PEM is read once, up front; a missing file, one without certificates, a ws:// URL or --insecure with it are usage errors', async (t) => {
  const certs = await devCerts(t)
  const url = 'wss://127.0.0.1:1/ws'
  assert.equal(parseOptions(['echo', '--url', url, '--ca', certs.caFile])?.ca, certs.ca)
  assert.equal(parseOptions(['echo', '--url', url])?.ca, undefined, 'the system store by default')
  const refusals: Array<[string[], RegExp]> = [
    [['--url', url, '--ca', join(tmpdir(), 'no-such-ca.crt')], /^--ca: cannot read .*no-such-ca\.crt: ENOENT/],
    [['--url', url, '--ca', certs.key], /^--ca must be a PEM file of certificates/],
    [['--url', 'ws://127.0.0.1:1/ws', '--ca', certs.caFile], /^--ca applies to wss:\/\/ URLs only/],
    [['--url', url, '--ca', certs.caFile, '--insecure'], /^--ca and --insecure exclude each other/]
  ]
  for (const [args, message] of refusals) {
    assert.throws(() => parseOptions(['echo', ...args]), (err: Error) => err instanceof UsageError && message.test(err.message), args.join(' '))
  }
})
