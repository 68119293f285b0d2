import { adviceForUnlistedCode, closeCodeEntry, type CloseAdvice } from './codes.js'

/** What a client does after a close, by close code (docs/PROTOCOL.md, "Close codes"). */
export type ClosePolicy = Exclude<CloseAdvice, 'stop-unless-asked'>

/**
 * The close-code table's advice as a decision. 1006 covers every close without a frame: a dead
 * peer, a terminated straggler, and a browser's view of a refused handshake.
 */
export function closePolicy (code: number, options: { reconnectOnIdle?: boolean } = {}): ClosePolicy {
  const advice = closeCodeEntry(code)?.advice ?? adviceForUnlistedCode(code)
  if (advice === 'stop-unless-asked') return options.reconnectOnIdle === true ? 'reconnect' : 'stop'
  return advice
}
