import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Page } from 'playwright-core'
import { WebSocket } from 'ws'
import { RealtimeClient } from '../../plugin/client/index.js'
import type { ChatRoute } from '../../app/chat-route.js'
import { startApp } from '../helpers/app.js'
import { launchChromium, openDemo } from '../helpers/browser.js'
import { freePort, startRedis } from '../helpers/redis.js'

test('demo page in a real Chromium: two pages chat over /ws, the server restarts, both reconnect and get what was sent meanwhile', async (t) => {
  const browser = await launchChromium(t)
  const redis = await startRedis(t)
  const port = await freePort()
  const env = { WS_DRAIN_MS: '200', REDIS_URL: redis.url }
  const server = await startApp(t, env, { port })

  const alice = await openDemo(t, browser, `${server.httpUrl}/`)
  const bob = await openDemo(t, browser, `${server.httpUrl}/`)
  assert.equal(server.app.realtime.connectionCount, 2)

  await alice.fill('#text', 'hello from alice')
  await alice.locator('#say button').click()
  for (const page of [alice, bob]) {
    await page.locator('#messages li', { hasText: 'hello from alice' }).waitFor({ timeout: 5_000 })
  }
  assert.equal(await alice.inputValue('#text'), '', 'the input clears once sent')
  const line = await bob.locator('#messages li').first().textContent()
  assert.match(line ?? '', /^anon-[\w-]{8}hello from alice$/)

  await bob.fill('#text', 'hi alice')
  await bob.locator('#say button').click()
  await alice.locator('#messages li', { hasText: 'hi alice' }).waitFor({ timeout: 5_000 })
  assert.equal(await alice.locator('#messages li').count(), 2)

  // A deploy: the node drains (1012) and is gone for a while; another node takes messages.
  const other = await startApp(t, env)
  await server.app.realtime.drain()
  await server.app.close()
  for (const page of [alice, bob]) await page.locator('#state[data-state="reconnecting"]').waitFor({ timeout: 5_000 })
  const speaker = new RealtimeClient<ChatRoute>(`${other.wsUrl}/ws`, { WebSocket })
  await speaker.request('say', { room: 'lobby', text: 'sent while you were away' })
  speaker.close()
  await startApp(t, env, { port })
  for (const page of [alice, bob]) {
    await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 })
    await page.locator('#messages li', { hasText: 'sent while you were away' }).waitFor({ timeout: 5_000 })
    assert.equal(await page.locator('#messages li').count(), 3, 'nothing lost, nothing twice')
    assert.ok(Number(await page.locator('#reconnects').textContent()) >= 1)
  }
  assert.equal(await alice.locator('#messages li.error').count(), 0, 'history was recovered')
})

test('demo page in a real Chromium: each page lists who is in its room, and a page that closes leaves the other\'s list', async (t) => {
  const browser = await launchChromium(t)
  const server = await startApp(t)
  const alice = await openDemo(t, browser, `${server.httpUrl}/`)
  const bob = await openDemo(t, browser, `${server.httpUrl}/`)

  // Sorted here too: the page's order is by name, and the two engines need not collate alike.
  const listed = async (page: Page) => (await page.locator('#members li').allTextContents()).sort()
  const ownName = async (page: Page) => (await page.locator('#members li.self').textContent({ timeout: 5_000 }) ?? '').replace(/ \(you\)$/, '')
  for (const page of [alice, bob]) await page.locator('#members li').nth(1).waitFor({ timeout: 5_000 })
  const aliceName = await ownName(alice)
  const bobName = await ownName(bob)
  assert.match(aliceName, /^anon-[\w-]{8}$/)
  assert.match(bobName, /^anon-[\w-]{8}$/)
  assert.notEqual(aliceName, bobName)
  assert.deepEqual(await listed(alice), [`${aliceName} (you)`, bobName].sort())
  assert.deepEqual(await listed(bob), [aliceName, `${bobName} (you)`].sort())

  await bob.close()
  await alice.locator('#members li', { hasText: bobName }).waitFor({ state: 'detached', timeout: 5_000 })
  assert.deepEqual(await listed(alice), [`${aliceName} (you)`])
})
