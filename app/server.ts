import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'
import { shutdownTelemetry } from './otel.js'

let config
let app
try {
  config = loadConfig(process.env)
  // Building reads the certificate files: one missing or mismatched is a configuration error too.
  app = await buildApp(config)
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  console.error(`configuration error: ${err.message}`)
  process.exit(1)
}

await app.listen({ port: config.port, host: config.host })

// SIGHUP rereads the certificate files, as it reloads nginx and HAProxy; without TLS it keeps
// its default (the process ends), since there is nothing to reload. A refused pair is logged
// and counted by reload() itself.
const certificates = app.certificates
if (certificates !== null) process.on('SIGHUP', () => { certificates.reload().catch(() => {}) })

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
