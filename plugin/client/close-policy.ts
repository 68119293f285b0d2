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
    case 1000: return 'stop'
    case 1002: case 1003: case 1007: case 1008: case 1009: return 'stop'
    case 1013: return 'reconnect-later'
    case 4000: return options.reconnectOnIdle === true ? 'reconnect' : 'stop'
    case 4003: return 'refresh-credentials'
  }
  if (code >= 4500 && code <= 4999) return 'stop'
  return 'reconnect'
}
