import { readFileSync } from 'node:fs'
import { Server as HttpServer, type IncomingMessage } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { DEFAULTS } from '../defaults.js'
import type { RealtimeMetrics, SocketRefusalReason } from '../telemetry/metrics.js'

/*
 * Limits that act before a request is read, on the TCP sockets of the HTTP server. Every other
 * guard (`maxConnections`, the upgrade rate limit, `Origin`, `authenticate`) runs once a request
 * head has arrived; a peer that opens sockets and sends nothing, or only a request line, never
 * reaches them, and Node holds such a socket for `headersTimeout` (60 s) checked every
 * `connectionsCheckingInterval` (30 s, fixed when the server is created): about 90 s. Fastify 5
 * adds nothing here: `connectionTimeout` and `requestTimeout` default to 0 (off). Enough such
 * sockets exhaust the process's file descriptors, and then every client, health checks
 * included, is reset. Two limits, both O(1) per socket and one timer per server:
 *
 * - A header deadline: a socket that has not delivered a complete request head within
 *   `headersTimeoutMs` of being accepted is destroyed (no response: nobody is listening for
 *   one). Waiting sockets sit in one insertion-ordered Map, so a sweep stops at the first one
 *   still in time. Only the first request is timed here; later requests on a keep-alive socket
 *   get Node's own `headersTimeout`, lowered to the deadline.
 * - A socket cap below the descriptor limit (`maxSockets`, by default the open-files soft limit
 *   less a headroom for the process's own files, Redis and log shipping). When it is reached, a
 *   new socket takes the place of the oldest socket that has not sent a request yet, provided
 *   that one has waited `socketEvictionMinAgeMs` (so a burst of real clients does not evict
 *   itself); only when there is none is the newcomer refused. A peer holding half-open sockets
 *   thus cannot keep a real client or a health check out: they evict its oldest socket. Sockets
 *   that have sent a request (served HTTP, open WebSockets) are never evicted; `maxConnections`
 *   bounds those.
 *
 * Each refusal is counted in `ws_sockets_refused_total{reason}` and logged as
 * `ws.sockets_refused` at most once a second per reason, with the count since the last line, so
 * a flood cannot flood the logs.
 */

/** What the guard needs of the plugin's options. */
export interface SocketGuardOptions {
  /** 0 disables the deadline. */
  headersTimeoutMs: number
  /** Undefined derives the cap from the open-files limit; 0 means no cap. */
  maxSockets: number | undefined
}

/** Sweeps run this many times per deadline, so a socket is dropped within deadline + a tenth. */
const SWEEPS_PER_DEADLINE = 10
/** Bounds of the sweep interval: not busier than this… */
const MIN_SWEEP_MS = 10
/** …and a 10 s deadline is still met within a second. */
const MAX_SWEEP_MS = 1_000
/** At most one `ws.sockets_refused` line per reason this often. */
const LOG_INTERVAL_MS = 1_000

/** Servers already guarded: a second plugin instance on the same server adds nothing. */
const guardedServers = new WeakSet<object>()

/** The soft "Max open files" limit of this process from `/proc/self/limits`; undefined where there is none (non-Linux) or it is unlimited. */
export function openFilesLimit (limitsFile = '/proc/self/limits'): number | undefined {
  let text
  try {
    text = readFileSync(limitsFile, 'utf8')
  } catch {
    return undefined
  }
  const soft = /^Max open files\s+(\d+)\s/m.exec(text)?.[1]
  return soft === undefined ? undefined : Number(soft)
}

/**
 * The default socket cap for an open-files limit: the limit less max(`socketHeadroomRatio` of
 * it, `minSocketHeadroom`), never below 1; 0 (no cap) when the limit is unknown.
 */
export function defaultMaxSockets (limit: number | undefined): number {
  if (limit === undefined) return 0
  const headroom = Math.max(Math.ceil(limit * DEFAULTS.socketHeadroomRatio), DEFAULTS.minSocketHeadroom)
  return Math.max(1, limit - headroom)
}

/**
 * Installs the deadline and the cap on `fastify.server`, from now until the app closes. Only
 * HTTP/1 servers (`http` and `https`): an HTTP/2 server multiplexes requests over a session, so
 * "has this socket sent a request" is a per-stream question its 'request' event cannot answer
 * per socket, Fastify already bounds idle sessions with `http2SessionTimeout`, and WebSockets
 * are not served over HTTP/2 (ws speaks RFC 6455 upgrades only).
 */
export function guardSockets (fastify: FastifyInstance, options: SocketGuardOptions, metrics: RealtimeMetrics): void {
  const server = fastify.server as unknown
  if (!(server instanceof HttpServer || server instanceof HttpsServer)) return
  const limit = openFilesLimit()
  const maxSockets = options.maxSockets ?? defaultMaxSockets(limit)
  const headersTimeoutMs = options.headersTimeoutMs
  if (headersTimeoutMs === 0 && maxSockets === 0) return
  if (guardedServers.has(server)) return
  guardedServers.add(server)
  const log = fastify.log
  log.info({ maxSockets, openFilesLimit: limit ?? null, headersTimeoutMs }, 'ws.socket_guard')
  if (limit !== undefined && maxSockets >= limit) {
    log.warn({ maxSockets, openFilesLimit: limit }, 'ws.max_sockets_above_limit')
  }
  // Node applies it to every request but only checks it every connectionsCheckingInterval;
  // for the first request the sweep below is the one that acts on time.
  if (headersTimeoutMs > 0 && (server.headersTimeout === 0 || server.headersTimeout > headersTimeoutMs)) {
    server.headersTimeout = headersTimeoutMs
  }

  const refusals = createRefusalLog(log, metrics, maxSockets)
  const open = new Set<Socket>()
  /** Sockets that have not sent a request, with the time they were accepted; oldest first. */
  const waiting = new Map<Socket, number>()
  const sweepMs = Math.min(MAX_SWEEP_MS, Math.max(MIN_SWEEP_MS, Math.ceil(headersTimeoutMs / SWEEPS_PER_DEADLINE)))
  let sweeper: NodeJS.Timeout | undefined

  const drop = (socket: Socket, reason: SocketRefusalReason): void => {
    waiting.delete(socket)
    open.delete(socket)
    refusals.record(reason, socket.remoteAddress)
    socket.destroy()
  }
  const sweep = (): void => {
    const acceptedBefore = performance.now() - headersTimeoutMs
    for (const [socket, acceptedAt] of waiting) {
      if (acceptedAt > acceptedBefore) break
      drop(socket, 'headers_timeout')
    }
    if (waiting.size === 0) {
      clearInterval(sweeper)
      sweeper = undefined
    }
  }
  /** Makes room by evicting the oldest waiting socket, if it has waited long enough to be no burst of real clients. */
  const evictOldest = (now: number): boolean => {
    const oldest = waiting.entries().next()
    if (oldest.done === true || now - oldest.value[1] < DEFAULTS.socketEvictionMinAgeMs) return false
    drop(oldest.value[0], 'evicted')
    return true
  }
  // With https this is the TCP socket, under the TLS socket the request arrives on.
  const onConnection = (socket: Socket): void => {
    const now = performance.now()
    if (maxSockets > 0 && open.size >= maxSockets && !evictOldest(now)) {
      refusals.record('capacity', socket.remoteAddress)
      socket.destroy()
      return
    }
    open.add(socket)
    waiting.set(socket, now)
    socket.once('close', () => {
      open.delete(socket)
      waiting.delete(socket)
    })
    if (headersTimeoutMs > 0 && sweeper === undefined) {
      sweeper = setInterval(sweep, sweepMs)
      sweeper.unref()
    }
  }
  const onRequest = (request: IncomingMessage): void => {
    const socket = request.socket as Socket | undefined
    // `injectWS` emits an upgrade without a socket: there is nothing to mark.
    if (socket === undefined) return
    // An https request arrives on a TLS socket, and Node exposes the TCP socket under it only as
    // `_parent`. Were that renamed, served wss sockets would be dropped at the deadline: the
    // https case of test/socket-guard.test.ts catches it.
    if (!waiting.delete(socket)) waiting.delete((socket as { _parent?: Socket })._parent as Socket)
  }
  server.on('connection', onConnection)
  server.on('request', onRequest)
  server.on('upgrade', onRequest)

  // After the drain's own preClose: the server is about to stop listening, and Node's close
  // waits for every socket, including these, which would never send anything.
  fastify.addHook('preClose', (done) => {
    for (const socket of waiting.keys()) {
      open.delete(socket)
      socket.destroy()
    }
    waiting.clear()
    done()
  })
  fastify.addHook('onClose', (_instance, done) => {
    clearInterval(sweeper)
    server.off('connection', onConnection)
    server.off('request', onRequest)
    server.off('upgrade', onRequest)
    guardedServers.delete(server)
    refusals.flush()
    done()
  })
}

/** Counts each refusal and logs them at most once per `LOG_INTERVAL_MS` per reason. */
function createRefusalLog (log: FastifyBaseLogger, metrics: RealtimeMetrics, maxSockets: number): {
  record: (reason: SocketRefusalReason, remoteAddress: string | undefined) => void
  flush: () => void
} {
  interface Pending { count: number, remoteAddress: string | undefined, timer: NodeJS.Timeout | undefined }
  const byReason = new Map<SocketRefusalReason, Pending>()
  const write = (reason: SocketRefusalReason, pending: Pending): void => {
    log.warn({ reason, count: pending.count, remoteAddress: pending.remoteAddress, maxSockets }, 'ws.sockets_refused')
    pending.count = 0
  }
  // The first refusal is logged at once; the rest of the interval is summed into one line at its end.
  const tick = (reason: SocketRefusalReason, pending: Pending): void => {
    if (pending.count === 0) {
      pending.timer = undefined
      return
    }
    write(reason, pending)
    pending.timer = setTimeout(tick, LOG_INTERVAL_MS, reason, pending).unref()
  }
  return {
    record (reason, remoteAddress) {
      metrics.socketRefused(reason)
      let pending = byReason.get(reason)
      if (pending === undefined) {
        pending = { count: 0, remoteAddress, timer: undefined }
        byReason.set(reason, pending)
      }
      pending.count++
      pending.remoteAddress = remoteAddress
      if (pending.timer === undefined) tick(reason, pending)
    },
    flush () {
      for (const [reason, pending] of byReason) {
        clearTimeout(pending.timer)
        if (pending.count > 0) write(reason, pending)
      }
      byReason.clear()
    }
  }
}
