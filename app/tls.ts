import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { Server as HttpsServer } from 'node:https'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Counter, Gauge } from 'prom-client'
import { ConfigError, type TlsConfig } from './config.js'

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); stated here so `--tls-min-v1.0` cannot lower it. */
export const TLS_MIN_VERSION = 'TLSv1.2'

/**
 * TLS 1.3's three suites (all AEAD, Node's own defaults and order), then Mozilla's "intermediate"
 * TLS 1.2 list: ECDHE only (forward secrecy) and AEAD only. Node's default also admits CBC and
 * static-RSA suites through `HIGH`; the DHE suites are left out because the app sets no DH
 * parameters, without which OpenSSL cannot use them.
 */
export const TLS_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305'
].join(':')

/** A certificate chain and its key, read from the files and checked against each other. */
export interface TlsPair {
  /** The files it was read from, and read again from on reload. */
  config: TlsConfig
  /** The server certificate, then its intermediates: what the handshake sends. */
  chain: string
  /** The private key's PEM, kept out of every log line. */
  key: Buffer
  /** The server certificate, parsed. */
  certificate: X509Certificate
}

/** Reads and checks the pair; a `ConfigError` names the file at fault and never its content. */
export async function readTlsPair (config: TlsConfig): Promise<TlsPair> {
  const certPem = await readPem('TLS_CERT_FILE', config.certFile)
  const keyPem = await readPem('TLS_KEY_FILE', config.keyFile)
  const caPem = config.caFile === undefined ? '' : (await readPem('TLS_CA_FILE', config.caFile)).toString()
  const cert = certPem.toString()
  // The first certificate is the one the key belongs to; any after it are intermediates.
  const certificate = parseCertificates('TLS_CERT_FILE', config.certFile, cert)[0] as X509Certificate
  if (config.caFile !== undefined) parseCertificates('TLS_CA_FILE', config.caFile, caPem)
  const key = parseKey(config.keyFile, keyPem)
  if (!certificate.checkPrivateKey(key)) {
    throw new ConfigError(`TLS_KEY_FILE "${config.keyFile}" is not the key of the certificate in TLS_CERT_FILE "${config.certFile}"`)
  }
  const pair = { config, chain: caPem === '' ? cert : `${cert.trimEnd()}\n${caPem}`, key: keyPem, certificate }
  try {
    // What setSecureContext() will do: OpenSSL may still refuse (a key too weak for its level).
    createSecureContext(secureContextOptions(pair))
  } catch (err) {
    throw new ConfigError(`TLS_CERT_FILE "${config.certFile}" and TLS_KEY_FILE are refused by OpenSSL: ${(err as Error).message}`)
  }
  return pair
}

/**
 * Everything the secure context holds. `setSecureContext()` resets whatever it is not given to
 * Node's defaults, so the first context and every reload are built here.
 */
export function secureContextOptions (pair: TlsPair): SecureContextOptions {
  return { cert: pair.chain, key: pair.key, minVersion: TLS_MIN_VERSION, ciphers: TLS_CIPHERS, honorCipherOrder: true }
}

async function readPem (variable: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new ConfigError(`${variable} "${path}" cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

function parseCertificates (variable: string, path: string, pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw new ConfigError(`${variable} "${path}" holds no PEM certificate`)
  return blocks.map((block) => {
    try {
      return new X509Certificate(block)
    } catch {
      throw new ConfigError(`${variable} "${path}" holds a certificate that does not parse`)
    }
  })
}

function parseKey (path: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem)
  } catch (err) {
    const encrypted = (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE'
    throw new ConfigError(`TLS_KEY_FILE "${path}" ${encrypted ? 'holds an encrypted key, the app takes an unencrypted one' : 'holds no PEM private key'}`)
  }
}

/** Whether a reload took the new pair or kept the old one, as the `outcome` label. */
type ReloadOutcome = 'ok' | 'error'

/**
 * The certificate the server presents, and its replacement: `reload()` rereads the files and
 * swaps the secure context, which only new handshakes use, so open connections stay as they are.
 * A pair that fails its checks is refused with a log line and the old one keeps serving.
 */
export class ServedCertificates {
  readonly #server: HttpsServer
  readonly #log: FastifyBaseLogger
  readonly #reloads: Counter<'outcome'>
  readonly #expiry: Gauge
  #pair: TlsPair
  #reloading: Promise<boolean> = Promise.resolve(true)

  constructor (app: FastifyInstance, pair: TlsPair) {
    if (!(app.server instanceof HttpsServer)) throw new Error('the app was built without its https options')
    this.#server = app.server
    this.#log = app.log.child({ component: 'tls' })
    this.#pair = pair
    const client = app.metrics.client
    this.#reloads = new client.Counter({
      name: 'tls_certificate_reloads_total',
      help: 'Certificate reloads (SIGHUP) by outcome: error means the new files were refused and the old pair still serves',
      labelNames: ['outcome'],
      registers: [client.register]
    })
    // Both series exist from the start, so increase() sees the first refusal.
    for (const outcome of ['ok', 'error'] satisfies ReloadOutcome[]) this.#reloads.inc({ outcome }, 0)
    this.#expiry = new client.Gauge({
      name: 'tls_certificate_expiry_timestamp_seconds',
      help: 'When the served certificate expires, in Unix seconds',
      registers: [client.register]
    })
    this.#serve(pair)
  }

  /** The certificate new handshakes present. */
  get certificate (): X509Certificate {
    return this.#pair.certificate
  }

  /**
   * Rereads the files and serves them if they pass; resolves to whether they did, never rejects.
   * Reloads run one after another, so the last signal's files are the ones served.
   */
  async reload (): Promise<boolean> {
    this.#reloading = this.#reloading.then(async () => await this.#reloadNow())
    return await this.#reloading
  }

  async #reloadNow (): Promise<boolean> {
    let outcome: ReloadOutcome = 'error'
    try {
      const pair = await readTlsPair(this.#pair.config)
      this.#server.setSecureContext(secureContextOptions(pair))
      this.#serve(pair)
      outcome = 'ok'
    } catch (err) {
      this.#log.error({ reason: (err as Error).message, fingerprint256: this.#pair.certificate.fingerprint256 }, 'tls.reload.refused')
    }
    this.#reloads.inc({ outcome })
    return outcome === 'ok'
  }

  #serve (pair: TlsPair): void {
    this.#pair = pair
    const { subject, subjectAltName, fingerprint256, validTo } = pair.certificate
    this.#expiry.set(Date.parse(validTo) / 1000)
    this.#log.info({ subject, subjectAltName, fingerprint256, validTo }, 'tls.certificate')
  }
}

/**
 * Serves `pair` on the app, built with `secureContextOptions(pair)` as its `https` option and with
 * fastify-metrics registered: the certificate metrics, and `Strict-Transport-Security` on every
 * HTTP response (a 101 is written by `ws`, past Fastify's hooks, and never carries it).
 */
export function serveTls (app: FastifyInstance, pair: TlsPair): ServedCertificates {
  const hsts = `max-age=${pair.config.hstsMaxAgeSeconds}`
  app.addHook('onSend', async (_request, reply) => {
    reply.header('strict-transport-security', hsts)
  })
  return new ServedCertificates(app, pair)
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The certificate the app serves and its reload; null when it serves plain HTTP. */
    certificates: ServedCertificates | null
  }
}
