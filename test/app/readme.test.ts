import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { DEFAULTS, ErrorCode } from '../../plugin/index.js'
import { loadConfig } from '../../app/config.js'

const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')
const readme = read('README.md')
const protocol = read('docs/PROTOCOL.md')
const exampleApp = read('docs/example-app.md')
const errorsPage = read('docs/errors.md')
const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts

/** Rows of the markdown table whose header starts with `firstHeader`: first cell → second cell. */
function tableRows (markdown: string, firstHeader: string): Map<string, string> {
  const lines = markdown.split('\n')
  const start = lines.findIndex((line) => line.startsWith(`| ${firstHeader} |`))
  assert.ok(start >= 0, `a table headed "${firstHeader}"`)
  const rows = new Map<string, string>()
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    const [key, value] = line.split('|').slice(1, 3).map((cell) => cell.trim().replaceAll('`', ''))
    rows.set(key as string, value as string)
  }
  return rows
}

test('the README opens with the newcomer commands, and they are the ones CI and npm run', () => {
  const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? ''
  assert.ok(readme.indexOf('```sh') < readme.indexOf('\n## '), 'the commands come before any section')
  assert.match(firstBlock, /^npm install && npm start\s/m)
  assert.match(firstBlock, /^npm test\s/m)
  assert.match(firstBlock, /^npm run test:unit\s+# .*no root, no system packages/m)

  const ci = read('.ci/run')
  assert.match(ci, /^npm ci$/m)
  assert.match(ci, /^npm test$/m)
  assert.ok(ci.indexOf('npm ci') < ci.indexOf('npm test'))

  assert.match(scripts.start ?? '', /app\/server\.ts/)
  const testScript = scripts.test ?? ''
  for (const step of ['scripts/install-system-deps.sh', 'npm run lint', 'npm run typecheck', 'npm run test:node']) {
    assert.ok(testScript.includes(step), `npm test runs ${step}`)
  }
  assert.match(scripts['test:node'] ?? '', /--test .*test\/\*\/\*\.test\.ts/)

  // The laptop command: the folders whose tests need no root and no system package, and only those.
  const unit = scripts['test:unit'] ?? ''
  for (const folder of ['test/plugin/', 'test/app/', 'test/loadtest/']) assert.ok(unit.includes(folder), `test:unit runs ${folder}`)
  for (const folder of ['test/redis/', 'test/ops/', 'install-system-deps']) assert.ok(!unit.includes(folder), `test:unit leaves out ${folder}`)
})

test('the README option table states the defaults the code uses', () => {
  const rows = tableRows(readme, 'option')
  const documented = ['maxPayload', 'heartbeatMs', 'idleTimeoutMs', 'maxConnections', 'maxBufferedBytes', 'upgradeRateLimit',
    'messagesPerSecond', 'identityMessagesPerSecond', 'addressMessagesPerSecond', 'drainMs', 'maxNestingDepth', 'maxFragments',
    'incompleteMessageTimeoutMs', 'maxSubscriptionsPerConnection', 'headersTimeoutMs', 'presenceWindowMs', 'idempotencyTtlMs', 'idempotencyLeaseMs'] as const
  for (const name of documented) assert.equal(rows.get(name), String(DEFAULTS[name]), name)
  for (const name of ['broker', 'allowedOrigins', 'authenticate', 'metrics', 'asyncapi']) assert.ok(rows.has(name), name)
  // Computed at register from the open-files limit, so the table names the rule, not a number.
  assert.equal(rows.get('maxSockets'), 'derived')
  assert.equal(rows.get('perMessageDeflate'), 'false')
  assert.equal(rows.get('healthRoutes'), 'true')
})

test('the example app\'s environment table (docs/example-app.md) matches the plugin defaults it stands for', () => {
  const rows = tableRows(exampleApp, 'variable')
  const config = loadConfig({})
  assert.equal(rows.get('PORT'), String(config.port))
  assert.equal(rows.get('HOST'), config.host)
  assert.equal(rows.get('LOG_LEVEL'), config.logLevel)
  assert.equal(rows.get('WS_MAX_PAYLOAD'), String(DEFAULTS.maxPayload))
  assert.equal(rows.get('WS_HEARTBEAT_MS'), String(DEFAULTS.heartbeatMs))
  assert.equal(rows.get('WS_MESSAGES_PER_SECOND'), String(DEFAULTS.messagesPerSecond))
  assert.equal(rows.get('WS_IDENTITY_MESSAGES_PER_SECOND'), String(DEFAULTS.identityMessagesPerSecond))
  assert.equal(rows.get('WS_ADDRESS_MESSAGES_PER_SECOND'), String(DEFAULTS.addressMessagesPerSecond))
  assert.equal(rows.get('WS_IDLE_TIMEOUT_MS'), String(DEFAULTS.idleTimeoutMs))
  assert.equal(rows.get('WS_MAX_CONNECTIONS'), String(DEFAULTS.maxConnections))
  assert.equal(rows.get('WS_MAX_BUFFERED_BYTES'), String(DEFAULTS.maxBufferedBytes))
  assert.equal(rows.get('WS_UPGRADE_RATE_LIMIT'), String(DEFAULTS.upgradeRateLimit))
  assert.equal(rows.get('WS_DRAIN_MS'), String(DEFAULTS.drainMs))
  assert.equal(rows.get('WS_HEADERS_TIMEOUT_MS'), String(DEFAULTS.headersTimeoutMs))
  assert.equal(config.maxSockets, undefined, 'WS_MAX_SOCKETS unset leaves the plugin to derive it')
  assert.equal(rows.get('WS_MAX_SOCKETS'), 'derived')
  for (const name of ['TRUST_PROXY', 'AUTH_SECRET', 'WS_ALLOWED_ORIGINS', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'LOKI_URL', 'REDIS_URL']) assert.ok(rows.has(name), name)
  assert.equal(rows.get('BROKER_HISTORY_SIZE'), String(DEFAULTS.historySize))
  assert.equal(rows.get('BROKER_PRESENCE_LEASE_MS'), String(DEFAULTS.presenceLeaseMs))
  assert.equal(rows.get('WS_PRESENCE_WINDOW_MS'), String(DEFAULTS.presenceWindowMs))
  const defaults = loadConfig({})
  assert.equal(rows.get('OTEL_SERVICE_NAME'), defaults.serviceName)
  assert.equal(rows.get('DEPLOYMENT_ENV'), defaults.environment)
})

test('the protocol document and docs/errors.md list every error code the code knows', () => {
  const errorRows = tableRows(protocol, 'code')
  for (const code of Object.values(ErrorCode)) assert.ok(errorRows.has(code), code)
  const explained = tableRows(errorsPage, '$error code')
  for (const code of Object.values(ErrorCode)) assert.ok(explained.has(code), `docs/errors.md: ${code}`)
})
