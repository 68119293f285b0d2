import type { FastifyReply, FastifyRequest } from 'fastify'
import { extractToken, redactToken, urlPath } from './credentials.js'
import { DEFAULTS } from '../defaults.js'
import { BEARER_PROTOCOL_PREFIX, SUBPROTOCOL } from '../protocol/frames.js'
import { reserveSlot } from '../connection/slots.js'
import type { ServedRoute } from '../instance.js'
import { setRequestSpanPath } from '../telemetry/tracing.js'
import type { RejectionReason } from '../telemetry/metrics.js'

/**
 * The checks an upgrade passes before the handshake, in the order of DESIGN.md: readiness and
 * capacity, then (between the two hooks) the upgrade rate limit, then `Origin`, then
 * authentication. Each refusal is plain HTTP with a log line and a metric.
 */

const RETRY_LATER = { 'retry-after': String(DEFAULTS.unavailableRetryAfterSeconds) }

/** `onRequest`: cheap refusals first, before rate limiting and authentication spend anything. */
export async function admitUpgrade (route: ServedRoute, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const state = route.instance
  // Before anything can refuse: the span is exported whatever the answer, a 101, a 401 or a 426.
  setRequestSpanPath(request, urlPath(request.url))
  if (!request.ws) return undefined
  if (!state.accepting) {
    return refuse(route, request, reply, 503, 'draining', 'server is shutting down', RETRY_LATER)
  }
  const cap = state.options.maxConnections
  if (cap > 0) {
    if (state.connections.size + state.pendingUpgrades >= cap) {
      return refuse(route, request, reply, 503, 'capacity', 'server is at its connection limit', RETRY_LATER)
    }
    reserveSlot(state, request)
  }
  const offered = request.headers['sec-websocket-protocol']
  if (offered !== undefined) {
    const versions = offered.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '' && !entry.startsWith(BEARER_PROTOCOL_PREFIX))
    if (versions.length > 0 && !versions.includes(SUBPROTOCOL)) {
      return refuse(route, request, reply, 400, 'subprotocol', `unsupported subprotocol: this server speaks ${SUBPROTOCOL}`)
    }
  }
  return undefined
}

/** `preValidation`: after the rate limit, the checks that cost more. */
export async function verifyUpgrade (route: ServedRoute, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const state = route.instance
  if (!request.ws) return undefined
  const origin = originVerdict(state.options.allowedOrigins, request)
  if (origin !== 'allowed') {
    // A page served from a public host needs the operator to list it; the log says so.
    if (origin === 'unlisted') request.log.warn({ origin: request.headers.origin }, 'ws.origin_not_configured')
    return refuse(route, request, reply, 403, 'origin', 'origin not allowed')
  }
  const authenticate = state.options.authenticate
  if (authenticate !== undefined) {
    let identity
    const token = extractToken(request)
    try {
      identity = await authenticate(request, token)
    } catch (err) {
      // What a verifier throws may quote the credential it refused; the log line must not.
      const message = (err as Error | undefined)?.message
      request.log.info({ err: { message: typeof message === 'string' ? redactToken(message, token) : undefined } }, 'ws.authentication_failed')
    }
    if (identity == null) {
      return refuse(route, request, reply, 401, 'unauthorized', 'missing or invalid credentials', { 'www-authenticate': 'Bearer' })
    }
    state.identities.set(request, identity)
  }
  return undefined
}

/** Called by the rate limiter when an IP is over its upgrade budget. */
export function recordUpgradeRateLimited (route: ServedRoute, request: FastifyRequest): void {
  route.metrics.rateLimited('upgrade')
  route.metrics.connectionRejected('rate_limited')
  request.log.info({ reason: 'rate_limited' }, 'ws.rejected')
}

/** A refused upgrade's socket is destroyed once answered: say so, or pooled clients reuse it. */
export async function closeRefusedUpgrade (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.ws) reply.header('connection', 'close')
}

/**
 * `Origin` against the allow-list. Without one, only pages served from this very host on a
 * loopback name pass (development): `Host` is chosen by the client, so a page whose DNS name was
 * rebound to this server sends a matching `Host` and `Origin` and would pass a plain same-origin
 * check. A same-host page on any other name is `unlisted`: refused, with a hint to configure
 * `allowedOrigins`.
 */
function originVerdict (allowed: Set<string> | undefined, request: FastifyRequest): 'allowed' | 'refused' | 'unlisted' {
  const origin = request.headers.origin
  if (origin === undefined) return 'allowed'
  if (allowed !== undefined) return allowed.has(origin) ? 'allowed' : 'refused'
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return 'refused'
  }
  if (url.host !== request.host) return 'refused'
  return isLoopbackName(url.hostname) ? 'allowed' : 'unlisted'
}

function isLoopbackName (hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname)
}

function refuse (
  route: ServedRoute,
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  reason: RejectionReason,
  message: string,
  headers: Record<string, string> = {}
): FastifyReply {
  route.metrics.connectionRejected(reason)
  request.log.info({ reason }, 'ws.rejected')
  return reply.code(status).headers(headers).send({ statusCode: status, error: reason, message })
}
