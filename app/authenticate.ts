import { createVerifier } from 'fast-jwt'
import type { Authenticate } from '../plugin/index.js'

/**
 * Accepts HS256 JWTs signed with `secret`: the subject becomes the connection's identity and
 * `exp` its expiry, after which the plugin closes the connection with 4003.
 */
export function jwtAuthenticator (secret: string): Authenticate {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] })
  return (_request, token) => {
    if (token === undefined) return undefined
    const claims = verify(token) as { sub: unknown, exp: number }
    if (typeof claims.sub !== 'string' || claims.sub === '') return undefined
    return { id: claims.sub, expiresAt: claims.exp * 1000 }
  }
}
