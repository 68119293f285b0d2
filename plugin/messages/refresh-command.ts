import { Type } from 'typebox'
import type { Connection } from '../connection/connection.js'
import { ErrorCode } from '../protocol/codes.js'
import type { RealtimeMetrics } from '../telemetry/metrics.js'
import type { Authenticate } from '../options.js'
import type { Identity } from '../types.js'
import { compileMessage, type CompiledMessage } from './compile.js'
import { RealtimeError } from './realtime-error.js'

/** A bearer token, as long as an upgrade header could carry. */
const RefreshData = Type.Object({ token: Type.String({ minLength: 1, maxLength: 8_192 }) }, { additionalProperties: false })
const RefreshReply = Type.Object({ expiresAt: Type.Optional(Type.Integer()) })

/**
 * `$refresh`: fresh credentials without a reconnect. The token goes through the plugin's
 * `authenticate` as at the upgrade; it must name the same identity and not be expired, and the
 * connection then takes its claims and expiry. Anything else answers `INVALID_CREDENTIALS`
 * (`FORBIDDEN` without `authenticate`) and changes nothing: the old expiry still closes with 4003.
 */
export function createRefreshCommand (authenticate: Authenticate | undefined, metrics: RealtimeMetrics): CompiledMessage {
  return compileMessage({ data: RefreshData, reply: RefreshReply }, async (data: { token: string }, context) => {
    const connection = context.connection as Connection
    const current = connection.identity
    if (authenticate === undefined || current === undefined) {
      throw new RealtimeError(ErrorCode.FORBIDDEN, 'this server takes no credentials')
    }
    let identity: Identity | undefined | null
    try {
      identity = await authenticate(connection.request, data.token)
    } catch {
      identity = undefined
    }
    const refusal = identity === undefined || identity === null
      ? 'the token was refused'
      : String(identity.id) !== String(current.id)
        ? 'the token is for another identity'
        : identity.expiresAt !== undefined && identity.expiresAt <= Date.now()
          ? 'the token has expired'
          : undefined
    if (refusal !== undefined || identity === undefined || identity === null) {
      metrics.credentialsRefreshed('refused')
      connection.log.info({ reason: refusal }, 'ws.refresh_refused')
      throw new RealtimeError(ErrorCode.INVALID_CREDENTIALS, refusal ?? 'the token was refused')
    }
    connection.refreshIdentity(identity)
    metrics.credentialsRefreshed('ok')
    connection.log.debug({ expiresAt: identity.expiresAt }, 'ws.credentials_refreshed')
    return identity.expiresAt === undefined ? {} : { expiresAt: identity.expiresAt }
  })
}
