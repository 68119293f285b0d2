import type { FastifyRequest } from 'fastify'
import { BEARER_PROTOCOL_PREFIX } from './protocol.js'

/**
 * The credential an upgrade carries, from the first place that has one: `Authorization: Bearer`,
 * a `bearer.<token>` entry in `Sec-WebSocket-Protocol` (browsers cannot set headers), or
 * `?token=`.
 */
export function extractToken (request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization
  if (authorization !== undefined && /^bearer /i.test(authorization)) {
    const token = authorization.slice(7).trim()
    if (token !== '') return token
  }
  const protocols = request.headers['sec-websocket-protocol']
  if (protocols !== undefined) {
    for (const entry of protocols.split(',')) {
      const trimmed = entry.trim()
      if (trimmed.startsWith(BEARER_PROTOCOL_PREFIX) && trimmed.length > BEARER_PROTOCOL_PREFIX.length) {
        return trimmed.slice(BEARER_PROTOCOL_PREFIX.length)
      }
    }
  }
  const token = (request.query as Record<string, unknown> | undefined)?.token
  return typeof token === 'string' && token !== '' ? token : undefined
}

/** A URL with its `token` query parameter replaced, for logs and spans. */
export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&#]*/gi, '$1[REDACTED]')
}
