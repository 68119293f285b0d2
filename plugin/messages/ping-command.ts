import { Type } from 'typebox'
import { compileMessage, type CompiledMessage } from './compile.js'

/**
 * `$ping`: an application-level heartbeat for clients that cannot see protocol pings
 * (browsers). Answered with an empty `$reply`; it spends message budget like any message.
 */
export function createPingCommand (): CompiledMessage {
  return compileMessage({ reply: Type.Object({}) }, () => ({}))
}
