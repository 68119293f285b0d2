/** The example app's settings, all from environment variables (listed in docs/example-app.md). */
export interface AppConfig {
  port: number
  host: string
  logLevel: string
  /** Fastify's `trustProxy`: whether `X-Forwarded-For` decides the client IP. */
  trustProxy: boolean | string
  /** HS256 secret; when set, every connection needs a JWT signed with it. */
  authSecret: string | undefined
  maxPayload: number | undefined
  heartbeatMs: number | undefined
  idleTimeoutMs: number | undefined
  maxConnections: number | undefined
  maxBufferedBytes: number | undefined
  upgradeRateLimit: number | undefined
  headersTimeoutMs: number | undefined
  /** Unset: the plugin derives it from the open-files limit. */
  maxSockets: number | undefined
  messagesPerSecond: number | undefined
  identityMessagesPerSecond: number | undefined
  addressMessagesPerSecond: number | undefined
  allowedOrigins: string[] | undefined
  drainMs: number | undefined
  presenceWindowMs: number | undefined
  /** Names the service in traces (`OTEL_SERVICE_NAME`) and the `service` label of logs in Loki. */
  serviceName: string
  /** The plugin's `traceSampleRatio`, from the OTel sampler's variables (`traceSampleRatio`). */
  traceSampleRatio: number
  /** The `env` label of logs in Loki. */
  environment: string
  /** Loki's base URL; when set, logs are also pushed there. */
  lokiUrl: string | undefined
  /** Redis for topics across nodes and cluster-wide upgrade limits; in-memory when unset. */
  redisUrl: string | undefined
  /** Entries each topic keeps for clients that resume. */
  historySize: number | undefined
  /** With Redis: how long a node's presence entries outlive its last renewal. */
  presenceLeaseMs: number | undefined
  /** Set, the app serves https:// and wss:// (`app/tls.ts`); unset, plain http:// and ws://. */
  tls: TlsConfig | undefined
}

/** Where the served certificate comes from; the files are read at start and on SIGHUP. */
export interface TlsConfig {
  /** PEM: the server certificate, optionally followed by its intermediates. */
  certFile: string
  /** PEM: the certificate's private key, unencrypted. */
  keyFile: string
  /** PEM: intermediates sent after the certificate, for a certificate file that lacks them. */
  caFile: string | undefined
  /** `Strict-Transport-Security: max-age=` on HTTP responses; 0 tells browsers to forget it. */
  hstsMaxAgeSeconds: number
}

/** Shared with `otel.ts`, so that a trace and its log lines name the same service. */
export const DEFAULT_SERVICE_NAME = 'fastify-realtime-example'

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function loadConfig (env: NodeJS.ProcessEnv): AppConfig {
  const logLevel = env.LOG_LEVEL ?? 'info'
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got "${logLevel}"`)
  const authSecret = env.AUTH_SECRET === '' ? undefined : env.AUTH_SECRET
  if (authSecret !== undefined && authSecret.length < 32) {
    throw new ConfigError('AUTH_SECRET must be at least 32 characters: shorter HS256 secrets can be brute-forced')
  }
  return {
    port: integer(env, 'PORT', 0, 65535) ?? 3000,
    host: env.HOST ?? '0.0.0.0',
    logLevel,
    trustProxy: trustProxy(env.TRUST_PROXY),
    authSecret,
    maxPayload: integer(env, 'WS_MAX_PAYLOAD', 1),
    heartbeatMs: integer(env, 'WS_HEARTBEAT_MS', 0),
    idleTimeoutMs: integer(env, 'WS_IDLE_TIMEOUT_MS', 0),
    maxConnections: integer(env, 'WS_MAX_CONNECTIONS', 0),
    maxBufferedBytes: integer(env, 'WS_MAX_BUFFERED_BYTES', 1),
    upgradeRateLimit: integer(env, 'WS_UPGRADE_RATE_LIMIT', 0),
    headersTimeoutMs: integer(env, 'WS_HEADERS_TIMEOUT_MS', 0),
    maxSockets: integer(env, 'WS_MAX_SOCKETS', 0),
    messagesPerSecond: integer(env, 'WS_MESSAGES_PER_SECOND', 0),
    identityMessagesPerSecond: integer(env, 'WS_IDENTITY_MESSAGES_PER_SECOND', 0),
    addressMessagesPerSecond: integer(env, 'WS_ADDRESS_MESSAGES_PER_SECOND', 0),
    allowedOrigins: origins(env.WS_ALLOWED_ORIGINS),
    drainMs: integer(env, 'WS_DRAIN_MS', 0),
    presenceWindowMs: integer(env, 'WS_PRESENCE_WINDOW_MS', 1),
    serviceName: nonEmpty(env.OTEL_SERVICE_NAME) ?? DEFAULT_SERVICE_NAME,
    traceSampleRatio: traceSampleRatio(env),
    environment: nonEmpty(env.DEPLOYMENT_ENV) ?? 'development',
    lokiUrl: httpUrl(env, 'LOKI_URL'),
    redisUrl: redisUrl(env.REDIS_URL),
    historySize: integer(env, 'BROKER_HISTORY_SIZE', 1),
    presenceLeaseMs: integer(env, 'BROKER_PRESENCE_LEASE_MS', 1),
    tls: tlsConfig(env)
  }
}

/** Where traces go over OTLP; unset, `otel.ts` starts no SDK. */
export function tracesEndpoint (env: NodeJS.ProcessEnv): string | undefined {
  return nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) ?? nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT)
}

/**
 * The ratio `OTEL_TRACES_SAMPLER=traceidratio` or `parentbased_traceidratio` asks for, which the
 * plugin applies to messages itself (and `otel.ts` tells the SDK to keep what it sampled); 1
 * for every other sampler, and when no SDK runs. Read as the SDK reads it: a blank or
 * out-of-range argument means 1.
 */
export function traceSampleRatio (env: NodeJS.ProcessEnv): number {
  if (tracesEndpoint(env) === undefined || env.OTEL_SDK_DISABLED === 'true') return 1
  if (env.OTEL_TRACES_SAMPLER !== 'traceidratio' && env.OTEL_TRACES_SAMPLER !== 'parentbased_traceidratio') return 1
  const ratio = Number(nonEmpty(env.OTEL_TRACES_SAMPLER_ARG) ?? 'NaN')
  return ratio >= 0 && ratio <= 1 ? ratio : 1
}

/** Both files or neither: one alone is a half-done setup, not a reason to serve plain HTTP. */
function tlsConfig (env: NodeJS.ProcessEnv): TlsConfig | undefined {
  const certFile = nonEmpty(env.TLS_CERT_FILE)
  const keyFile = nonEmpty(env.TLS_KEY_FILE)
  const caFile = nonEmpty(env.TLS_CA_FILE)
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined) throw new ConfigError('TLS_CA_FILE is set without TLS_CERT_FILE and TLS_KEY_FILE')
    return undefined
  }
  if (certFile === undefined || keyFile === undefined) {
    throw new ConfigError(`TLS_CERT_FILE and TLS_KEY_FILE go together, only ${certFile === undefined ? 'TLS_KEY_FILE' : 'TLS_CERT_FILE'} is set`)
  }
  // A year, as OWASP advises; without includeSubDomains, which would bind hosts this app does not serve.
  return { certFile, keyFile, caFile, hstsMaxAgeSeconds: integer(env, 'TLS_HSTS_MAX_AGE_SECONDS', 0) ?? 31_536_000 }
}

function integer (env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
  }
  return value
}

function origins (raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined
  const list = raw.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  for (const origin of list) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(`WS_ALLOWED_ORIGINS entries must look like https://example.com, got "${origin}"`)
    }
  }
  return list
}

/**
 * `true`/`false`, or a comma list of the proxies' addresses and CIDR ranges. A hop count is
 * refused: Fastify 5 trusts nothing for one (it cannot vouch for the immediate peer), so every
 * client would look like the load balancer and share one rate-limit bucket.
 */
function trustProxy (raw: string | undefined): boolean | string {
  if (raw === undefined || raw === '' || raw === 'false') return false
  if (raw === 'true') return true
  if (/^\d+$/.test(raw)) {
    throw new ConfigError(`TRUST_PROXY must be true, false or the proxies' addresses/CIDRs, not a hop count ("${raw}")`)
  }
  return raw
}

function nonEmpty (raw: string | undefined): string | undefined {
  return raw === undefined || raw.trim() === '' ? undefined : raw.trim()
}

function httpUrl (env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = nonEmpty(env[name])
  if (raw === undefined) return undefined
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`)
  }
  return raw
}

function redisUrl (raw: string | undefined): string | undefined {
  const value = nonEmpty(raw)
  if (value === undefined) return undefined
  if (!URL.canParse(value) || !/^rediss?:$/.test(new URL(value).protocol)) {
    throw new ConfigError(`REDIS_URL must be a redis:// or rediss:// URL, got "${value}"`)
  }
  return value
}
