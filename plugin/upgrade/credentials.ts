import type { FastifyRequest } from 'fastify'
import { BEARER_PROTOCOL_PREFIX } from '../protocol/frames.js'

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

/** What a redacted credential is replaced with. */
const REDACTED = '[REDACTED]'

/**
 * A URL with the value of every query parameter whose key is `token`, in any case and any
 * encoding, replaced by `[REDACTED]`, for logs and spans. The path is left as it is.
 *
 * It reads the query as Fastify does by default, so that whatever authenticates as `?token=` is
 * redacted: the query starts at the first `?` or `#` (find-my-way ends the path at either, so
 * `/ws#token=` is read as `?token=`; a request target has no fragment) and its pairs are split
 * on `&` only, each value running to the next `&`. Keys are decoded as `fast-querystring` decodes
 * them, `+` to a space and then percent-escapes, so `%74oken` and `to%6Ben` are `token`. A key
 * whose escapes do not decode has its value redacted too: `fast-querystring` would keep such a
 * key raw, but other query parsers (Node's `querystring`, `qs`) decode the escapes they can, and
 * a log line loses nothing worth keeping. A URL with no `%` in its query takes a path that
 * allocates nothing unless it redacts.
 */
export function redactUrl (url: string): string {
  const start = queryStart(url)
  if (start === -1) return url
  const encoded = url.indexOf('%', start) !== -1
  let redacted = ''
  let copiedTo = 0
  let pairStart = start + 1
  while (pairStart <= url.length) {
    let pairEnd = url.indexOf('&', pairStart)
    if (pairEnd === -1) pairEnd = url.length
    const equals = url.indexOf('=', pairStart)
    if (equals !== -1 && equals < pairEnd && (encoded ? isEncodedTokenKey(url.slice(pairStart, equals)) : isPlainTokenKey(url, pairStart, equals))) {
      redacted += url.slice(copiedTo, equals + 1) + REDACTED
      copiedTo = pairEnd
    }
    pairStart = pairEnd + 1
  }
  return copiedTo === 0 ? url : redacted + url.slice(copiedTo)
}

/** The path of a request URL, without the query (which starts as in `redactUrl`). */
export function urlPath (url: string): string {
  const start = queryStart(url)
  return start === -1 ? url : url.slice(0, start)
}

/** Where Fastify's router ends the path: the first `?` or `#`, or -1. */
function queryStart (url: string): number {
  const question = url.indexOf('?')
  const hash = url.indexOf('#')
  if (question === -1) return hash
  return hash === -1 || question < hash ? question : hash
}

const TOKEN_KEY = 'token'

/** An unescaped key is `token` when its five characters are, ASCII case folded. */
function isPlainTokenKey (url: string, from: number, to: number): boolean {
  if (to - from !== TOKEN_KEY.length) return false
  for (let i = 0; i < TOKEN_KEY.length; i++) {
    // `| 0x20` folds A-Z onto a-z; no other character of a raw URL lands on a lower-case letter.
    if ((url.charCodeAt(from + i) | 0x20) !== TOKEN_KEY.charCodeAt(i)) return false
  }
  return true
}

/** An escaped key decoded as `fast-querystring` decodes it; one that does not decode counts as `token`. */
function isEncodedTokenKey (raw: string): boolean {
  if (raw.indexOf('%') === -1) return isPlainTokenKey(raw, 0, raw.length)
  let decoded: string
  try {
    decoded = decodeURIComponent(raw.replaceAll('+', ' '))
  } catch {
    return true
  }
  return decoded.toLowerCase() === TOKEN_KEY
}

/** Parts of a token shorter than this are left in a message: they say little and match much. */
const MIN_REDACTED_PART_LENGTH = 8

/**
 * `text` with `token`, and each of its `.`-separated parts (a JWT's header, payload and
 * signature) of at least 8 characters, replaced by `[REDACTED]`: for the message of an error an
 * `authenticate` function threw, which may quote the credential or a piece of it.
 */
export function redactToken (text: string, token: string | undefined): string {
  if (token === undefined || token === '') return text
  let redacted = text.replaceAll(token, REDACTED)
  for (const part of token.split('.')) {
    if (part.length >= MIN_REDACTED_PART_LENGTH) redacted = redacted.replaceAll(part, REDACTED)
  }
  return redacted
}
