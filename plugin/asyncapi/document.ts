/**
 * An AsyncAPI 3.0 document from the declared routes: a channel per route (with the WebSockets
 * binding of its upgrade), a `receive` operation with its `reply` per client message type and
 * protocol command, a `send` operation per event, `$welcome` and `$error`, and the close codes.
 */
import { ErrorCode } from '../protocol/codes.js'
import { PRESENCE_DIFF_TYPE, SUBPROTOCOL } from '../protocol/frames.js'
import type { CompiledMessage, CompiledRoute } from '../messages/compile.js'
import { CLOSE_CODE_MEANINGS, ERROR_CODE_MEANINGS } from './codes.js'
import { clientMessage, errorMessage, eventMessage, presenceDiffMessage, replyMessage, toJsonSchema, welcomeMessage, type JsonSchema } from './envelopes.js'

export const ASYNCAPI_VERSION = '3.0.0'

export interface AsyncApiServer {
  /** `host[:port]`, e.g. `chat.example.com`. */
  host: string
  protocol: 'ws' | 'wss'
  pathname?: string
  description?: string
}

export interface AsyncApiOptions {
  /** The document's `info`; `title` defaults to "WebSocket API", `version` to "1.0.0". */
  info?: { title?: string, version?: string, description?: string }
  /**
   * Servers the document lists. Unset, the served document names the server that answered
   * (from the request's host and protocol) and a generated one lists none.
   */
  servers?: Record<string, AsyncApiServer>
}

/** An AsyncAPI 3.0 document; the fields this plugin fills, loosely typed beyond them. */
export interface AsyncApiDocument {
  asyncapi: typeof ASYNCAPI_VERSION
  info: { title: string, version: string, description: string, [extension: `x-${string}`]: unknown }
  defaultContentType: string
  servers?: Record<string, Record<string, unknown>>
  channels: Record<string, Record<string, unknown>>
  operations: Record<string, Record<string, unknown>>
  components: { messages: Record<string, Record<string, unknown>>, securitySchemes?: Record<string, Record<string, unknown>> }
}

/** What the document needs to know beyond the routes. */
export interface DocumentSources {
  routes: readonly CompiledRoute[]
  /** `$subscribe`, `$unsubscribe`, `$presence`, `$ping`: answered on every route that has what they need. */
  commands: Map<string, CompiledMessage>
  authenticated: boolean
  originRestricted: boolean
}

const TOPIC_COMMANDS = new Set(['$subscribe', '$unsubscribe'])
const SECURITY_SCHEME = 'bearer'

/** Keys of AsyncAPI components and channels must match `^[a-zA-Z0-9.\-_]+$`. */
function keyOf (name: string): string {
  return name.replace(/[^a-zA-Z0-9.\-_]/g, '_').replace(/^[._-]+|[._-]+$/g, '') || 'root'
}

function uniqueKey (taken: Record<string, unknown>, base: string): string {
  let key = base
  for (let n = 2; key in taken; n++) key = `${base}_${n}`
  return key
}

const ref = (pointer: string): { $ref: string } => ({ $ref: pointer })

export function buildAsyncApiDocument (sources: DocumentSources, options: AsyncApiOptions = {}): AsyncApiDocument {
  const document: AsyncApiDocument = {
    asyncapi: ASYNCAPI_VERSION,
    info: {
      title: options.info?.title ?? 'WebSocket API',
      version: options.info?.version ?? '1.0.0',
      description: options.info?.description ??
        `WebSocket routes speaking the \`${SUBPROTOCOL}\` protocol: JSON text frames \`{ type, id?, data?, traceparent? }\`; ` +
        'a message with an `id` is answered exactly once, by `$reply` or `$error` with the same `id`; the server pushes events; ' +
        'the first frame of every connection is `$welcome`.',
      'x-subprotocol': SUBPROTOCOL
    },
    defaultContentType: 'application/json',
    ...(options.servers === undefined ? {} : { servers: serversOf(options.servers, sources.authenticated) }),
    channels: {},
    operations: {},
    components: {
      messages: {
        'protocol.welcome': {
          name: '$welcome',
          title: '$welcome',
          summary: 'The first frame on every connection: its id, heartbeat and limits.',
          payload: welcomeMessage()
        },
        'protocol.error': {
          name: '$error',
          title: '$error',
          summary: 'A refused message or a failed handler.',
          description: 'Error codes:\n\n' + Object.entries(ERROR_CODE_MEANINGS).map(([code, meaning]) => `- \`${code}\`: ${meaning}`).join('\n') +
            '\n\nHandlers may answer with codes of their own (upper snake case).',
          payload: errorMessage(Object.values(ErrorCode)),
          'x-error-codes': { ...ERROR_CODE_MEANINGS }
        }
      },
      ...(sources.authenticated ? { securitySchemes: { [SECURITY_SCHEME]: bearerScheme() } } : {})
    }
  }
  for (const route of sources.routes) addRoute(document, route, sources)
  return document
}

/** The servers to list, each with the bearer scheme when upgrades are authenticated. */
export function serversOf (servers: Record<string, AsyncApiServer>, authenticated: boolean): Record<string, Record<string, unknown>> {
  const listed: Record<string, Record<string, unknown>> = {}
  for (const [name, server] of Object.entries(servers)) {
    listed[uniqueKey(listed, keyOf(name))] = {
      ...server,
      ...(authenticated ? { security: [ref(`#/components/securitySchemes/${SECURITY_SCHEME}`)] } : {})
    }
  }
  return listed
}

function bearerScheme (): Record<string, unknown> {
  return {
    type: 'http',
    scheme: 'bearer',
    description: 'Sent with the upgrade as `Authorization: Bearer <token>`, a `bearer.<token>` entry in `Sec-WebSocket-Protocol` (browsers), or `?token=`. ' +
      'Missing or invalid: HTTP 401 before the handshake; expired during the session: close 4003.'
  }
}

function addRoute (document: AsyncApiDocument, route: CompiledRoute, sources: DocumentSources): void {
  const channel = uniqueKey(document.channels, keyOf(route.url))
  const channelRef = ref(`#/channels/${channel}`)
  const channelMessages: Record<string, { $ref: string }> = {}
  const messageRef = (local: string): { $ref: string } => ref(`#/channels/${channel}/messages/${local}`)
  const messages = document.components.messages
  const operations = document.operations

  /** Adds a message to the components (once) and to this channel, under `local`. */
  const use = (local: string, component: string, message: Record<string, unknown> | undefined): void => {
    if (message !== undefined) messages[component] = message
    channelMessages[local] = ref(`#/components/messages/${component}`)
  }
  use('protocol.welcome', 'protocol.welcome', undefined)
  use('protocol.error', 'protocol.error', undefined)

  /**
   * A client message and its reply. Declared types get keys no other entry holds (a type may
   * be named like another's reply: `foo.reply`); protocol commands share theirs across routes.
   */
  const receive = (type: string, local: string, component: string, compiled: CompiledMessage, summary: string, shared: boolean): void => {
    const data = compiled.schemas.data === undefined ? undefined : toJsonSchema(compiled.schemas.data)
    const reply = compiled.schemas.reply === undefined ? undefined : toJsonSchema(compiled.schemas.reply)
    use(local, component, { name: type, title: type, summary, payload: clientMessage(type, data) })
    const replyLocal = shared ? `${local}.reply` : uniqueKey(channelMessages, `${local}.reply`)
    const replyComponent = shared ? `${component}.reply` : uniqueKey(messages, `${component}.reply`)
    use(replyLocal, replyComponent, {
      name: '$reply',
      title: `${type} reply`,
      summary: `The \`$reply\` to \`${type}\`, sent when the message carried an \`id\`.`,
      payload: replyMessage(reply)
    })
    operations[uniqueKey(operations, `${channel}.receive.${local}`)] = {
      action: 'receive',
      channel: channelRef,
      summary,
      messages: [messageRef(local)],
      reply: { channel: channelRef, messages: [messageRef(replyLocal), messageRef('protocol.error')] },
      ...(compiled.schemas.messagesPerSecond === undefined ? {} : { 'x-messages-per-second': compiled.schemas.messagesPerSecond })
    }
  }
  const send = (local: string, summary: string): void => {
    operations[uniqueKey(operations, `${channel}.send.${local}`)] = { action: 'send', channel: channelRef, summary, messages: [messageRef(local)] }
  }

  const prefix = keyOf(channel)
  for (const [type, compiled] of route.messages) {
    const key = keyOf(type)
    receive(type, uniqueKey(channelMessages, `message.${key}`), uniqueKey(messages, `${prefix}.message.${key}`), compiled, `Handles \`${type}\`.`, false)
  }
  for (const [type, compiled] of sources.commands) {
    if (TOPIC_COMMANDS.has(type) && route.authorizeSubscribe === undefined) continue
    if (type === '$presence' && route.presence === undefined) continue
    if (type === '$refresh' && !sources.authenticated) continue
    const key = keyOf(type)
    receive(type, `protocol.${key}`, `protocol.${key}`, compiled, COMMAND_SUMMARIES[type] ?? `The protocol command \`${type}\`.`, true)
  }
  for (const [name, compiled] of route.events) {
    const key = keyOf(name)
    const local = uniqueKey(channelMessages, `event.${key}`)
    use(local, uniqueKey(messages, `${prefix}.event.${key}`), {
      name,
      title: name,
      summary: `The event \`${name}\`, pushed to one connection or published on a topic.`,
      payload: eventMessage(name, toJsonSchema(compiled.schema))
    })
    send(local, `Pushes \`${name}\`.`)
  }
  if (route.presence !== undefined) {
    use('protocol.presence.diff', uniqueKey(messages, `${prefix}.presence.diff`), {
      name: PRESENCE_DIFF_TYPE,
      title: PRESENCE_DIFF_TYPE,
      summary: 'Who joined and left a topic, to connections that subscribed with `presence: true`.',
      payload: presenceDiffMessage(toJsonSchema(route.presence.info))
    })
    send('protocol.presence.diff', 'Tells a topic\'s presence watchers who joined and left, coalesced over `presenceWindowMs`.')
  }
  if (typeof route.binary === 'function') {
    use('protocol.binary', 'protocol.binary', { name: 'binary', title: 'binary frame', contentType: 'application/octet-stream', payload: { type: 'string', format: 'binary' } })
    operations[uniqueKey(operations, `${channel}.receive.protocol.binary`)] = { action: 'receive', channel: channelRef, summary: 'Binary frames, handed to the route as they are.', messages: [messageRef('protocol.binary')] }
  }
  send('protocol.welcome', 'Greets each connection.')
  send('protocol.error', 'Refuses a message, or reports a failed handler.')

  document.channels[channel] = {
    address: route.url,
    title: `WebSocket route ${route.url}`,
    description: channelDescription(route),
    messages: channelMessages,
    bindings: { ws: upgradeBinding(sources) },
    'x-close-codes': { ...CLOSE_CODE_MEANINGS },
    'x-messages-per-second': route.messagesPerSecond
  }
}

const COMMAND_SUMMARIES: Record<string, string> = {
  $subscribe: 'Joins a topic; with `since` (and `epoch`) the server first replays what was missed, and `recovered` says whether all of it was.',
  $unsubscribe: 'Leaves a topic.',
  $presence: 'Reads a topic\'s presence across every node: the counts of users and connections, and up to `limit` members unless `count` is set.',
  $refresh: 'Fresh credentials without a reconnect: the token is checked as at the upgrade, must name the same identity, and moves the connection\'s expiry; refused, `INVALID_CREDENTIALS`, and the old expiry stands.',
  $ping: 'An application heartbeat for clients that cannot see protocol pings (browsers); answered with an empty `$reply`.'
}

function channelDescription (route: CompiledRoute): string {
  const closeCodes = Object.entries(CLOSE_CODE_MEANINGS).map(([code, { meaning, reconnect }]) => `| ${code} | ${meaning} | ${reconnect} |`)
  return [
    `Upgrade with \`GET ${route.url}\` and the \`${SUBPROTOCOL}\` subprotocol. Refusals before the handshake are plain HTTP: ` +
      '503 (draining or full; `Retry-After`), 400 (unknown subprotocol), 429 (upgrade rate limit; `Retry-After`), 403 (`Origin`), 401 (credentials).',
    route.authorizeSubscribe === undefined
      ? 'This route allows no topics.'
      : 'Events published on a topic carry `topic` and `offset`; `$subscribe` with `since` resumes after a reconnect.',
    '',
    '| close code | meaning | reconnect? |',
    '| --- | --- | --- |',
    ...closeCodes
  ].join('\n')
}

/** The WebSockets channel binding: what the upgrade request carries. */
function upgradeBinding (sources: DocumentSources): Record<string, unknown> {
  const headers: Record<string, JsonSchema> = {
    'Sec-WebSocket-Protocol': { type: 'string', description: `\`${SUBPROTOCOL}\`${sources.authenticated ? ', optionally with a `bearer.<token>` entry' : ''}.` }
  }
  if (sources.authenticated) headers.Authorization = { type: 'string', pattern: '^Bearer .+$' }
  if (sources.originRestricted) headers.Origin = { type: 'string', description: 'Must be one of the allowed origins, or the upgrade gets 403.' }
  return {
    method: 'GET',
    ...(sources.authenticated ? { query: { type: 'object', properties: { token: { type: 'string', description: 'The bearer token, for clients that cannot set headers.' } } } } : {}),
    headers: { type: 'object', properties: headers },
    bindingVersion: '0.1.0'
  }
}
