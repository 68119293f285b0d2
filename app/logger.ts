import { hostname } from 'node:os'
import type { FastifyServerOptions } from 'fastify'
import type { LoggerOptions } from 'pino'
import { redactUrl, traceLogFields } from '../plugin/index.js'
import type { AppConfig } from './config.js'

/** Where log lines go when the caller keeps them (tests); stdout otherwise. */
export interface LogStream {
  write: (line: string) => void
}

/** Seconds between pushes to Loki: the delay before a line shows up there. */
const LOKI_PUSH_INTERVAL_SECONDS = 1

/**
 * Fastify's pino options: JSON lines on stdout with trace ids from the active span, secrets
 * redacted, and with `LOKI_URL` a second destination that pushes the same lines to Loki.
 */
export function loggerOptions (config: AppConfig, stream?: LogStream): FastifyServerOptions['logger'] {
  const options: LoggerOptions = {
    level: config.logLevel,
    mixin: traceLogFields,
    // pino-loki turns `hostname` into a stream label; the node's name belongs in the line.
    base: { pid: process.pid, node: hostname() },
    serializers: {
      // Tokens may ride in `?token=` (browsers cannot set headers on a WebSocket).
      req: (request: { method: string, url: string, host: string, ip: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        host: request.host,
        remoteAddress: request.ip
      })
    },
    redact: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["sec-websocket-protocol"]']
  }
  if (config.lokiUrl === undefined) return { ...options, stream }
  return {
    ...options,
    transport: {
      targets: [
        { target: 'pino/file', options: { destination: 1 }, level: config.logLevel },
        {
          target: 'pino-loki',
          level: config.logLevel,
          options: {
            host: config.lokiUrl,
            // Few labels, all of bounded cardinality: ids belong in the line, where LogQL filters them.
            labels: { service: config.serviceName, env: config.environment },
            batching: { interval: LOKI_PUSH_INTERVAL_SECONDS },
            timeout: 5_000
          }
        }
      ]
    }
  }
}
