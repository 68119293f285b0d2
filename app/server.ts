import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { shutdownTelemetry } from './otel.js'

let config
try {
  config = loadConfig(process.env)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(`configuration error: ${err.message}`)
  process.exit(1)
}

const app = await buildApp(config)
await app.listen({ port: config.port, host: config.host })

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down')
    // Drain first: while connections close with 1012, readiness and new upgrades get 503 with
    // Retry-After from the plugin rather than Fastify's bare closing response.
    app.realtime.drain().then(async () => await app.close()).then(shutdownTelemetry).then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  })
}
