import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { TestClient } from '../helpers/client.js'
import { startServer } from '../helpers/server.js'

/** Tokens are `<user>:<expiry in ms from now>`; `bad` is refused, as a failed signature would be. */
const authenticate = (_request: unknown, token: string | undefined) => {
  if (token === undefined || token === 'bad') return undefined
  const [id, lifeMs] = token.split(':')
  if (token === 'throws') throw new Error('verifier failed')
  return { id: String(id), expiresAt: Date.now() + Number(lifeMs) }
}

async function connect (t: TestContext, url: string, token: string): Promise<TestClient> {
  return await TestClient.connect(t, url, { headers: { authorization: `Bearer ${token}` } })
}

test('$refresh moves the connection\'s expiry without a reconnect; $welcome says when it expires', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { authenticate })
  const client = await connect(t, `${server.wsUrl}/ws`, 'ann:800')
  const expiresAt = client.welcome!.data.expiresAt as number
  assert.ok(expiresAt > Date.now() && expiresAt <= Date.now() + 800, 'the welcome tells the expiry')
  const refreshed = await client.request('$refresh', { token: 'ann:60000' })
  assert.equal(refreshed.type, '$reply')
  assert.ok(refreshed.data.expiresAt > Date.now() + 50_000, 'the new expiry is answered')
  // Expiry is checked each second: by 2.2 s a check has come after the old expiry.
  await new Promise((resolve) => setTimeout(resolve, 2_200))
  assert.equal(client.socket.readyState, client.socket.OPEN, 'still open past the old expiry')
  assert.equal((await client.request('$ping')).type, '$reply')
  const metrics = await server.app.realtime.metricsRegistry!.metrics()
  assert.match(metrics, /^ws_credential_refreshes_total\{outcome="ok"\} 1$/m)
})

test('$refresh refused (another identity, garbage, a verifier that throws, an expired token) answers INVALID_CREDENTIALS and the old expiry still closes with 4003', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') }, { authenticate })
  const client = await connect(t, `${server.wsUrl}/ws`, 'ann:1000')
  for (const token of ['bob:60000', 'bad', 'throws', 'ann:-1000']) {
    const refused = await client.request('$refresh', { token })
    assert.equal(refused.error?.code, 'INVALID_CREDENTIALS', token)
  }
  assert.equal((await client.request('$refresh', { token: '' })).error.code, 'VALIDATION_FAILED')
  assert.equal((await client.request('$refresh', {})).error.code, 'VALIDATION_FAILED')
  assert.deepEqual(await client.closed, { code: 4003, reason: 'credentials expired' })
  const metrics = await server.app.realtime.metricsRegistry!.metrics()
  assert.match(metrics, /^ws_credential_refreshes_total\{outcome="refused"\} 4$/m)
  assert.ok(server.logs.some((line) => line.msg === 'ws.refresh_refused' && line.reason === 'the token is for another identity'))
})

test('$refresh without authenticate is FORBIDDEN and changes nothing', async (t) => {
  const server = await startServer(t, (app) => { app.wsRoute('/ws') })
  const client = await TestClient.connect(t, `${server.wsUrl}/ws`)
  assert.equal(client.welcome!.data.expiresAt, undefined)
  assert.equal((await client.request('$refresh', { token: 'ann:60000' })).error.code, 'FORBIDDEN')
  assert.equal((await client.request('$ping')).type, '$reply')
})
