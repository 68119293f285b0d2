import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TestClient } from '../helpers/client.js'
import { metricValue } from '../helpers/metrics.js'
import { assertEchoes, assertRawEchoes, clientFrame, closeFrame, closeLogs, handshakeKey, handshakeRequest, OP_TEXT, RawPeer, start, whileEchoing } from '../helpers/raw-peer.js'
import { eventually, within } from '../helpers/server.js'

test('a handshake written one byte at a time still upgrades and is welcomed', async (t) => {
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const peer = await RawPeer.open(server)
  const startedAt = performance.now()
  const welcome = await peer.upgrade(server.port, { slow: true })
  assert.equal(typeof welcome.data.connectionId, 'string')
  await assertRawEchoes(peer, 1, 'slow')
  t.diagnostic(`byte-per-turn handshake took ${Math.round(performance.now() - startedAt)} ms`)
  await assertEchoes(healthy, 'after slow handshake')
  assert.equal(server.app.realtime.connectionCount, 2)
})

test('an upgrade request with thousands of headers is refused by the HTTP parser; the server keeps serving', async (t) => {
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const peer = await RawPeer.open(server)
  let headers = ''
  for (let i = 0; i < 3_000; i++) headers += `x-h${i}: v\r\n`
  peer.write(handshakeRequest(server.port, handshakeKey(), headers))
  const response = (await peer.readToEnd(5_000)).toString('latin1')
  // The server may reset the socket before we read the 431 (we are still writing), so an
  // empty answer is also a refusal; an upgrade never is.
  assert.doesNotMatch(response, /^HTTP\/1\.1 101/)
  if (response !== '') assert.match(response, /^HTTP\/1\.1 431 /)
  t.diagnostic(`answer: ${response === '' ? '(reset)' : response.split('\r\n')[0]}`)
  assert.equal(server.app.realtime.connectionCount, 1)
  await assertEchoes(healthy, 'after header flood')
  const fresh = await RawPeer.open(server)
  await fresh.upgrade(server.port)
})

test('frames that never finish do not count as activity: the idle timeout closes with 4000', async (t) => {
  const server = await start(t, { idleTimeoutMs: 200, heartbeatMs: 0 })
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const fragment = await RawPeer.open(server)
  const truncated = await RawPeer.open(server)
  const fragmentWelcome = await fragment.upgrade(server.port)
  const truncatedWelcome = await truncated.upgrade(server.port)
  const startedAt = performance.now()
  // A first fragment (FIN=0) whose continuation never comes.
  fragment.write(clientFrame(OP_TEXT, '{"type":"echo","id":1,"data":{"te', { fin: false }))
  // A complete header announcing 100 payload bytes, followed by only 10 of them.
  truncated.write(clientFrame(OP_TEXT, 'x'.repeat(100)).subarray(0, 2 + 4 + 10))
  const codes = await whileEchoing(healthy, Promise.all([fragment.closeCode(3_000), truncated.closeCode(3_000)]))
  const elapsedMs = performance.now() - startedAt
  assert.deepEqual(codes, [4000, 4000])
  assert.ok(elapsedMs < 2_000, `closed after ${Math.round(elapsedMs)} ms`)
  t.diagnostic(`idle close after ${Math.round(elapsedMs)} ms (idleTimeoutMs 200)`)
  fragment.write(closeFrame(4000))
  // The server would read a close frame as the rest of the unfinished payload: end TCP instead.
  truncated.socket.end()
  await whileEchoing(healthy, Promise.all([fragment.ended, truncated.ended]))
  await eventually(() => server.app.realtime.connectionCount === 1, 2_000, 'the idle peers to be dropped')
  const idleClosed = server.logs.filter((line) => line.msg === 'ws.idle_timeout').map((line) => line.connectionId)
  assert.deepEqual(new Set(idleClosed), new Set([fragmentWelcome.data.connectionId, truncatedWelcome.data.connectionId]))
  // Both are logged with the code the server sent, whether or not the peer could answer it.
  for (const welcome of [fragmentWelcome, truncatedWelcome]) {
    assert.deepEqual(closeLogs(server, welcome.data.connectionId).map((line) => line.code), [4000])
  }
  await assertEchoes(healthy, 'after idle closes')
})

const violations = [
  { name: 'an unknown opcode (0x3)', bytes: () => clientFrame(0x3, ''), code: 1002 },
  { name: 'an unmasked client frame', bytes: () => clientFrame(OP_TEXT, '{"type":"echo","data":{"text":"x"}}', { mask: false }), code: 1002 },
  { name: 'a text frame with invalid UTF-8', bytes: () => clientFrame(OP_TEXT, Buffer.from([0x22, 0xff, 0xfe, 0x22])), code: 1007 }
]

test('protocol violations close only the offending connection, with 1002 or 1007', async (t) => {
  const server = await start(t)
  const registry = server.app.realtime.metricsRegistry
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  for (const violation of violations) {
    const peer = await RawPeer.open(server)
    await peer.upgrade(server.port)
    peer.write(violation.bytes())
    assert.equal(await peer.closeCode(2_000), violation.code, violation.name)
    // ws ends the TCP connection itself after a protocol error, without waiting for our close.
    await within(peer.ended, 2_000, `end of the connection after ${violation.name}`)
    await assertEchoes(healthy, `after ${violation.name}`)
  }
  await eventually(() => server.app.realtime.connectionCount === 1, 2_000, 'the offenders to be dropped')
  // Counted under the code the server sent, not the 1006 of a peer that never answered.
  assert.equal(await metricValue(registry, 'ws_disconnections_total', { route: '/ws', code: '1002' }), 2)
  assert.equal(await metricValue(registry, 'ws_disconnections_total', { route: '/ws', code: '1007' }), 1)
  await assertEchoes(healthy, 'after every violation')
})

test('1000 concurrent connections are each welcomed, served, and released', async (t) => {
  const total = 1_000
  const concurrency = 50
  const server = await start(t)
  const healthy = await TestClient.connect(t, `${server.wsUrl}/ws`)
  const startedAt = performance.now()
  const peers: RawPeer[] = []
  const connectionIds = new Set<unknown>()
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++
      const peer = await RawPeer.open(server)
      peers.push(peer)
      connectionIds.add((await peer.upgrade(server.port)).data.connectionId)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const openedMs = performance.now() - startedAt
  assert.equal(peers.length, total)
  assert.equal(connectionIds.size, total, 'every connection has its own id')
  // The healthy bystander is one more.
  assert.equal(server.app.realtime.connectionCount, total + 1)

  const sample = peers.filter((_, i) => i % 50 === 0)
  await Promise.all(sample.map(async (peer, i) => await assertRawEchoes(peer, i + 1, `sample-${i}`)))
  await assertEchoes(healthy, 'with 1000 neighbours')

  for (const peer of peers) peer.write(closeFrame(1000))
  const codes = await Promise.all(peers.map(async (peer) => await peer.closeCode(10_000)))
  assert.ok(codes.every((code) => code === 1000), 'each close is answered with 1000')
  await Promise.all(peers.map(async (peer) => await peer.readToEnd(10_000)))
  await eventually(() => server.app.realtime.connectionCount === 1, 5_000, 'the 1000 connections to be released')
  await assertEchoes(healthy, 'after the crowd left')
  healthy.socket.close(1000)
  assert.equal((await healthy.closed).code, 1000)
  await eventually(() => server.app.realtime.connectionCount === 0, 2_000, 'the count to return to 0')
  assert.equal(await metricValue(server.app.realtime.metricsRegistry, 'ws_disconnections_total', { route: '/ws', code: '1000' }), total + 1)
  t.diagnostic(`opened ${total} in ${Math.round(openedMs)} ms, whole test ${Math.round(performance.now() - startedAt)} ms`)
})
