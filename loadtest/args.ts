import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { parseDuration, parseDurationRange } from './duration.js'
import { isScenario, SCENARIOS, type ScenarioName } from './scenario-names.js'
import { parseThreshold, type Threshold } from './thresholds.js'

/** Everything a run needs, resolved and validated; workers receive it as is. */
export interface Options {
  scenario: ScenarioName
  url: string
  headers: Record<string, string>
  workers: number
  durationMs: number
  warmupMs: number
  timeoutMs: number
  json: string | undefined
  html: string | undefined
  thresholds: Threshold[]
  progress: boolean
  insecure: boolean
  /** PEM text of the CA certificates wss:// servers must chain to (instead of the system's); undefined: the system's. */
  ca: string | undefined
  connections: number
  pipeline: number
  /** Messages (echo, soak) or publishes (fanout) per second across all connections; undefined: closed loop. */
  rate: number | undefined
  messageType: string
  /** JSON text; fanout replaces `{{marker}}` in it with the send-time marker. */
  data: string
  subscribers: number
  publishers: number
  topic: string
  connectRate: number | undefined
  concurrency: number
  holdMs: [number, number]
  backoffMs: [number, number]
  intervalMs: number
  metricsUrl: string | undefined
  settleMs: number
}

export class UsageError extends Error {
  override name = 'UsageError'
}

export const MARKER_PLACEHOLDER = '{{marker}}'

interface Flag {
  name: string
  value?: string
  multiple?: true
  scenarios?: readonly ScenarioName[]
  help: string
}

const ECHO_LIKE: readonly ScenarioName[] = ['echo', 'soak']

/** The single source of the flags, their help text and which scenarios take them. */
const FLAGS: readonly Flag[] = [
  { name: 'url', value: 'ws-url', help: 'WebSocket URL (ws:// or wss://), also a load balancer\'s; default ws://localhost:3000/ws' },
  { name: 'header', value: "'Name: value'", multiple: true, help: 'upgrade request header; repeatable' },
  { name: 'token', value: 'token', help: 'shorthand for --header \'Authorization: Bearer <token>\'' },
  { name: 'workers', value: 'n', help: 'worker threads generating load; default: CPU cores − 1 (at least 1)' },
  { name: 'duration', value: 'time', help: 'how long to measure (after the warmup): 30s, 5m, 2h; default 10s (soak: 10m; connect: the hold after the ramp)' },
  { name: 'warmup', value: 'time', scenarios: ['echo', 'fanout', 'churn', 'soak'], help: 'run this long before measuring; default 0s' },
  { name: 'timeout', value: 'time', help: 'handshake and reply timeout; default 10s' },
  { name: 'json', value: 'file', help: 'write the machine-readable report to file (- for stdout, instead of the text report)' },
  { name: 'html', value: 'file', help: 'write a self-contained HTML report with charts' },
  { name: 'threshold', value: 'expr', multiple: true, help: 'pass/fail criterion like p99<50ms, errors<1%, rate>1000; repeatable; a failed one exits 1' },
  { name: 'no-progress', help: 'no live progress line (it is only shown on a terminal anyway)' },
  { name: 'insecure', help: 'accept any TLS certificate for wss://' },
  { name: 'ca', value: 'file', help: 'trust the CA certificates in this PEM file for wss://, instead of the system\'s (a private or development CA)' },
  { name: 'connections', value: 'n', scenarios: ['connect', 'echo', 'churn', 'soak'], help: 'connections (connect: target; churn: virtual users); default connect 100, echo 10, churn 50, soak 10' },
  { name: 'pipeline', value: 'n', scenarios: ECHO_LIKE, help: 'messages in flight per connection, closed loop (echo default 1); exclusive with --rate' },
  { name: 'rate', value: 'n', scenarios: ['echo', 'fanout', 'soak'], help: 'messages per second in total (echo, soak; soak default 100) or publishes per second (fanout, default 10)' },
  { name: 'type', value: 'name', scenarios: ['echo', 'fanout', 'soak'], help: 'message type sent; default echo (echo, soak), say (fanout)' },
  { name: 'data', value: 'json', scenarios: ['echo', 'fanout', 'soak'], help: `message data; default {"text":"hello"}; fanout: {"room":"loadtest","text":"${MARKER_PLACEHOLDER}"}, where ${MARKER_PLACEHOLDER} becomes the send-time marker` },
  { name: 'subscribers', value: 'n', scenarios: ['fanout'], help: 'subscriber connections; default 100' },
  { name: 'publishers', value: 'n', scenarios: ['fanout'], help: 'publisher connections sharing --rate; default 1' },
  { name: 'topic', value: 'topic', scenarios: ['fanout'], help: 'topic the subscribers join; default room:loadtest' },
  { name: 'settle', value: 'time', scenarios: ['fanout'], help: 'after the last publish, how long to wait for deliveries still on their way; default 2s' },
  { name: 'connect-rate', value: 'n', scenarios: ['connect'], help: 'new connections per second during the ramp; default: as fast as --concurrency allows' },
  { name: 'concurrency', value: 'n', scenarios: ['connect'], help: 'handshakes in progress at once; default 50' },
  { name: 'hold', value: 'min-max', scenarios: ['churn'], help: 'how long a virtual user keeps its connection, random in the range; default 500ms-3s' },
  { name: 'backoff', value: 'min-max', scenarios: ['churn', 'fanout'], help: 'reconnect delay after an unrequested close: full jitter from min, doubling to max; default 100ms-5s' },
  { name: 'interval', value: 'time', scenarios: ['soak'], help: 'reporting interval; default 1m' },
  { name: 'metrics-url', value: 'url', scenarios: ['soak'], help: 'Prometheus endpoint of the server; process_resident_memory_bytes is sampled each interval' },
  { name: 'help', help: 'show this help' }
]

export function usage (): string {
  const lines = [
    'Usage: fastify-realtime-loadtest <scenario> [flags]',
    '       npm run loadtest -- <scenario> [flags]',
    '',
    `Scenarios: ${SCENARIOS.join(', ')} (docs/LOADTEST.md describes what each measures)`,
    '',
    'Flags:'
  ]
  for (const flag of FLAGS) {
    const left = `  --${flag.name}${flag.value === undefined ? '' : ` ${flag.value}`}`
    const only = flag.scenarios === undefined ? '' : ` [${flag.scenarios.join(', ')}]`
    lines.push(`${left.padEnd(30)} ${flag.help}${only}`)
  }
  lines.push('', 'Exit codes: 0 passed, 1 a threshold failed, 2 bad flags, 3 the run could not start.')
  return lines.join('\n')
}

/** Returns undefined when --help was asked for. */
export function parseOptions (argv: readonly string[]): Options | undefined {
  let parsed
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(FLAGS.map((flag) => [flag.name, { type: flag.value === undefined ? 'boolean' : 'string', multiple: flag.multiple ?? false }]))
    })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>
  if (values.help === true) return undefined
  const [scenario, ...extra] = parsed.positionals
  if (scenario === undefined) throw new UsageError(`name a scenario: ${SCENARIOS.join(', ')}`)
  if (!isScenario(scenario)) throw new UsageError(`unknown scenario "${scenario}"; one of ${SCENARIOS.join(', ')}`)
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`)
  for (const flag of FLAGS) {
    if (values[flag.name] !== undefined && flag.scenarios !== undefined && !flag.scenarios.includes(scenario)) {
      throw new UsageError(`--${flag.name} does not apply to ${scenario} (only to ${flag.scenarios.join(', ')})`)
    }
  }
  const text = (name: string): string | undefined => values[name] as string | undefined
  const list = (name: string): string[] => (values[name] as string[] | undefined) ?? []
  const duration = (name: string, fallback: number): number => wrap(() => text(name) === undefined ? fallback : parseDuration(text(name) as string, `--${name}`))
  const range = (name: string, fallback: [number, number]): [number, number] => wrap(() => text(name) === undefined ? fallback : parseDurationRange(text(name) as string, `--${name}`))

  const fanout = scenario === 'fanout'
  const pipeline = number(text('pipeline'), 'pipeline', { integer: true, positive: true })
  const explicitRate = number(text('rate'), 'rate', { positive: true })
  if (pipeline !== undefined && explicitRate !== undefined) throw new UsageError('--pipeline (closed loop) and --rate (fixed rate) exclude each other')
  const rate = explicitRate ?? (scenario === 'soak' && pipeline === undefined ? 100 : fanout ? 10 : undefined)
  const defaultConnections = { connect: 100, echo: 10, churn: 50, soak: 10, fanout: 0 }[scenario]
  const data = text('data') ?? (fanout ? `{"room":"loadtest","text":"${MARKER_PLACEHOLDER}"}` : '{"text":"hello"}')
  try {
    JSON.parse(data)
  } catch (err) {
    throw new UsageError(`--data must be JSON: ${(err as Error).message}`)
  }
  if (fanout && !data.includes(MARKER_PLACEHOLDER)) throw new UsageError(`fanout's --data must contain ${MARKER_PLACEHOLDER} in a string the published event carries, so subscribers can time each delivery`)

  const options: Options = {
    scenario,
    url: url(text('url') ?? 'ws://localhost:3000/ws', ['ws:', 'wss:'], 'url'),
    headers: headers(list('header'), text('token')),
    workers: number(text('workers'), 'workers', { integer: true, positive: true }) ?? Math.max(1, availableParallelism() - 1),
    durationMs: duration('duration', scenario === 'soak' ? 600_000 : 10_000),
    warmupMs: duration('warmup', 0),
    timeoutMs: duration('timeout', 10_000),
    json: text('json'),
    html: text('html'),
    thresholds: list('threshold').map((expression) => wrap(() => parseThreshold(expression, scenario))),
    progress: values['no-progress'] !== true,
    insecure: values.insecure === true,
    ca: text('ca') === undefined ? undefined : caFile(text('ca') as string),
    connections: number(text('connections'), 'connections', { integer: true, positive: true }) ?? defaultConnections,
    pipeline: pipeline ?? 1,
    rate,
    messageType: text('type') ?? (fanout ? 'say' : 'echo'),
    data,
    subscribers: number(text('subscribers'), 'subscribers', { integer: true, positive: true }) ?? 100,
    publishers: number(text('publishers'), 'publishers', { integer: true, positive: true }) ?? 1,
    topic: text('topic') ?? 'room:loadtest',
    settleMs: duration('settle', 2_000),
    connectRate: number(text('connect-rate'), 'connect-rate', { positive: true }),
    concurrency: number(text('concurrency'), 'concurrency', { integer: true, positive: true }) ?? 50,
    holdMs: range('hold', [500, 3_000]),
    backoffMs: range('backoff', [100, 5_000]),
    intervalMs: duration('interval', 60_000),
    metricsUrl: text('metrics-url') === undefined ? undefined : url(text('metrics-url') as string, ['http:', 'https:'], 'metrics-url')
  }
  if (options.ca !== undefined && options.insecure) throw new UsageError('--ca and --insecure exclude each other: --insecure accepts any certificate')
  if (options.ca !== undefined && new URL(options.url).protocol !== 'wss:') throw new UsageError(`--ca applies to wss:// URLs only, got "${options.url}"`)
  if (options.durationMs <= 0) throw new UsageError('--duration must be above 0')
  if (options.timeoutMs <= 0) throw new UsageError('--timeout must be above 0')
  if (options.intervalMs < 1_000) throw new UsageError('--interval must be at least 1s: intervals are made of one-second samples')
  return options
}

/** Flag parsers throw their own error types; the CLI only needs to know the user erred. */
function wrap<T> (parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function number (raw: string | undefined, name: string, rules: { integer?: boolean, positive?: boolean }): number | undefined {
  if (raw === undefined) return undefined
  const value = Number(raw)
  if (raw.trim() === '' || !Number.isFinite(value) || (rules.integer === true && !Number.isInteger(value)) || (rules.positive === true && value <= 0)) {
    throw new UsageError(`--${name} must be a ${rules.positive === true ? 'positive ' : ''}${rules.integer === true ? 'integer' : 'number'}, got "${raw}"`)
  }
  return value
}

function url (raw: string, protocols: string[], name: string): string {
  if (!URL.canParse(raw) || !protocols.includes(new URL(raw).protocol)) {
    throw new UsageError(`--${name} must be a ${protocols.map((protocol) => protocol + '//').join(' or ')} URL, got "${raw}"`)
  }
  return raw
}

/** Read here rather than in each worker, so a missing or wrong file is a usage error before any connection. */
function caFile (path: string): string {
  let pem
  try {
    pem = readFileSync(path, 'utf8')
  } catch (err) {
    throw new UsageError(`--ca: cannot read ${path}: ${(err as Error).message}`)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new UsageError(`--ca must be a PEM file of certificates, ${path} holds none`)
  return pem
}

function headers (raw: string[], token: string | undefined): Record<string, string> {
  const result: Record<string, string> = {}
  for (const header of raw) {
    const colon = header.indexOf(':')
    const name = header.slice(0, colon).trim()
    if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/i.test(name)) throw new UsageError(`--header must read 'Name: value', got "${header}"`)
    result[name.toLowerCase()] = header.slice(colon + 1).trim()
  }
  if (token !== undefined) result.authorization = `Bearer ${token}`
  return result
}
