import { CloseCode } from '../protocol.js'

/** What a client does after a close, by close code (docs/PROTOCOL.md, "Close codes"). */
export type ClosePolicy =
  /** Reconnect after a backoff delay, then resume subscriptions. */
  | 'reconnect'
  /** Reconnect after a longer delay: the server asked to be left alone for a while. */
  | 'reconnect-later'
  /** Fetch fresh credentials (`getToken`), then reconnect. */
  | 'refresh-credentials'
  /** Do not reconnect: retrying would fail the same way, or the close was meant. */
  | 'stop'

/**
 * The protocol's table as a pure function. 1006 covers every close without a frame: a dead
 * peer, a terminated straggler, and a browser's view of a refused handshake.
 */
export function closePolicy (code: number, options: { reconnectOnIdle?: boolean } = {}): ClosePolicy {
  switch (code) {
    case CloseCode.NORMAL: return 'stop'
    case CloseCode.PROTOCOL_ERROR: case CloseCode.UNSUPPORTED_DATA: case CloseCode.INVALID_PAYLOAD: case CloseCode.POLICY_VIOLATION: case CloseCode.MESSAGE_TOO_BIG: return 'stop'
    case CloseCode.TRY_AGAIN_LATER: return 'reconnect-later'
    case CloseCode.IDLE_TIMEOUT: return options.reconnectOnIdle === true ? 'reconnect' : 'stop'
    case CloseCode.CREDENTIALS_EXPIRED: return 'refresh-credentials'
  }
  if (code >= 4500 && code <= 4999) return 'stop'
  return 'reconnect'
}
