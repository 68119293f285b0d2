import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { stringify } from 'yaml'
import { serversOf, type AsyncApiDocument, type AsyncApiOptions } from './document.js'

/** The document as YAML: plain, without anchors for objects that appear twice. */
export function asyncApiYaml (document: AsyncApiDocument): string {
  return stringify(document, { aliasDuplicateObjects: false })
}

/**
 * Hidden from @fastify/swagger: these describe the WebSocket routes, not an HTTP API. `hide` is
 * a key swagger adds to FastifySchema, unknown to Fastify's own types.
 */
const HIDDEN = { schema: { hide: true } as FastifySchema }

/**
 * `/asyncapi.json` and `/asyncapi.yaml`. The document is built once, on first request (routes
 * are fixed by then); unless servers were configured, each answer names the server it came from.
 */
export function registerAsyncApiRoutes (instance: FastifyInstance, build: () => AsyncApiDocument, options: AsyncApiOptions, authenticated: boolean): void {
  let cached: AsyncApiDocument | undefined
  const documentFor = (request: FastifyRequest): AsyncApiDocument => {
    cached ??= build()
    if (options.servers !== undefined) return cached
    const server = { host: request.host, protocol: request.protocol === 'https' ? 'wss' : 'ws', description: 'The server that served this document.' } as const
    return { ...cached, servers: serversOf({ this: server }, authenticated) }
  }
  instance.get('/asyncapi.json', HIDDEN, async (request) => documentFor(request))
  instance.get('/asyncapi.yaml', HIDDEN, async (request, reply) =>
    await reply.type('application/yaml; charset=utf-8').send(asyncApiYaml(documentFor(request))))
}
