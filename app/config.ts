/** The example app's settings, all from environment variables (listed in the README). */
export interface AppConfig {
  port: number
  host: string
  logLevel: string
  maxPayload: number | undefined
  heartbeatMs: number | undefined
  messagesPerSecond: number | undefined
}

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export class ConfigError extends Error {
  override name = 'ConfigError'
}

export function loadConfig (env: NodeJS.ProcessEnv): AppConfig {
  const logLevel = env.LOG_LEVEL ?? 'info'
  if (!LOG_LEVELS.has(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${[...LOG_LEVELS].join(', ')}, got "${logLevel}"`)
  return {
    port: integer(env, 'PORT', 0, 65535) ?? 3000,
    host: env.HOST ?? '0.0.0.0',
    logLevel,
    maxPayload: integer(env, 'WS_MAX_PAYLOAD', 1),
    heartbeatMs: integer(env, 'WS_HEARTBEAT_MS', 0),
    messagesPerSecond: integer(env, 'WS_MESSAGES_PER_SECOND', 0)
  }
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
