import { hostname } from 'node:os'
import type { FastifyServerOptions } from 'fastify'
import { stdSerializers, type LoggerOptions } from 'pino'
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
      // Tokens may ride in `?token=` (browsers cannot set headers on a WebSocket), in any encoding.
      req: (request: { method: string, url: string, host: string, ip: string }) => ({
        method: request.method,
        url: redactUrl(request.url),
        host: request.host,
        remoteAddress: request.ip
      }),
      err: (err: Error) => {
        // Fastify's own errors may quote the URL too (a reply sent twice names its route by it).
        const serialized = stdSerializers.err(err)
        // Anything thrown that is not an Error comes back as it was.
        if (typeof serialized?.message === 'string') serialized.message = redactUrlsInText(serialized.message)
        if (typeof serialized?.stack === 'string') serialized.stack = redactUrlsInText(serialized.stack)
        return serialized
      }
    },
    hooks: {
      // Fastify writes some URLs into the message itself, raw: `Route GET:/ws?token=… not found`.
      logMethod (args, method) {
        const inputs = args as unknown[]
        for (let i = 0; i < inputs.length; i++) {
          const input = inputs[i]
          if (typeof input === 'string') inputs[i] = redactUrlsInText(input)
        }
        method.apply(this, args)
      }
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

/**
 * `text` with every URL in it passed through `redactUrl`: a URL is the run of characters around a
 * `?` or `#` up to whitespace, a quote or an angle bracket (a request target holds none of them).
 * One pass, no regular expression, so a long line costs linear time; a line with neither `?` nor
 * `#` is returned as it is.
 */
export function redactUrlsInText (text: string): string {
  let mark = nextQueryMark(text, 0)
  if (mark === -1) return text
  let redacted = ''
  let copiedTo = 0
  while (mark !== -1) {
    let from = mark
    while (from > copiedTo && !endsUrl(text.charCodeAt(from - 1))) from--
    let to = mark + 1
    while (to < text.length && !endsUrl(text.charCodeAt(to))) to++
    redacted += text.slice(copiedTo, from) + redactUrl(text.slice(from, to))
    copiedTo = to
    mark = nextQueryMark(text, to)
  }
  return redacted + text.slice(copiedTo)
}

function nextQueryMark (text: string, from: number): number {
  const question = text.indexOf('?', from)
  const hash = text.indexOf('#', from)
  if (question === -1) return hash
  return hash === -1 || question < hash ? question : hash
}

/** Whitespace, quotes and angle brackets: what cannot be in a request target. */
function endsUrl (code: number): boolean {
  return code <= 0x20 || code === 0x22 || code === 0x27 || code === 0x60 || code === 0x3c || code === 0x3e
}
