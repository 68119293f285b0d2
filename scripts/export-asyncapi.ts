/*
 * `npm run asyncapi [-- file.yaml|file.json]`: the example app's AsyncAPI document at build time,
 * without listening, to stdout (YAML) or to a file whose extension picks the format.
 * ASYNCAPI_SERVER=wss://chat.example.com lists that server in it.
 */
import { writeFile } from 'node:fs/promises'
import { buildApp } from '../app/app.js'
import { loadConfig } from '../app/config.js'
import { asyncApiYaml, type AsyncApiServer } from '../plugin/index.js'

function serverOf (url: string | undefined): Record<string, AsyncApiServer> | undefined {
  if (url === undefined || url === '') return undefined
  const { protocol, host, pathname } = new URL(url)
  if (protocol !== 'ws:' && protocol !== 'wss:') throw new Error(`ASYNCAPI_SERVER must be a ws:// or wss:// URL, got ${url}`)
  return { production: { host, protocol: protocol === 'wss:' ? 'wss' : 'ws', ...(pathname === '/' ? {} : { pathname }) } }
}

const app = await buildApp(loadConfig({ ...process.env, LOG_LEVEL: 'warn' }))
await app.ready()
const servers = serverOf(process.env.ASYNCAPI_SERVER)
const document = app.realtime.asyncApi(servers === undefined ? {} : { servers })
await app.close()
const out = process.argv[2]
if (out === undefined) {
  process.stdout.write(asyncApiYaml(document))
} else {
  await writeFile(out, out.endsWith('.json') ? JSON.stringify(document, null, 2) + '\n' : asyncApiYaml(document))
}
