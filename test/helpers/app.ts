import type { TestContext } from 'node:test'
import { buildApp } from '../../app/app.js'
import { loadConfig } from '../../app/config.js'
import type { LogStream } from '../../app/logger.js'
import { listen, logCollector, type TestServer } from './server.js'

/** How a test runs the example app beyond its environment. */
export interface StartAppOptions {
  /**
   * Where the app's log lines go: `true` keeps them, parsed, in the result's `logs`; a stream
   * gets them as written; by default they go to stdout, as under `npm start`.
   */
  logs?: boolean | LogStream
  /** A fixed port, for a test that restarts a node where its clients will reconnect. */
  port?: number
}

/**
 * Builds the example app in this process, as `app/server.ts` does, and listens on loopback; the
 * app is closed when the test ends. Warnings only and a short drain unless `env` says otherwise:
 * clients still open at the end would otherwise hold each test for the default drain.
 */
export async function startApp (t: TestContext, env: NodeJS.ProcessEnv = {}, options: StartAppOptions = {}): Promise<TestServer> {
  const collector = options.logs === true ? logCollector() : undefined
  const stream = collector?.stream ?? (typeof options.logs === 'object' ? options.logs : undefined)
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'warn', WS_DRAIN_MS: '50', ...env }), stream)
  return await listen(t, app, collector?.logs, options.port)
}
