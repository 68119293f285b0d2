import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { chromium, type Page } from 'playwright-core'
import { buildApp } from '../app/app.js'
import { loadConfig } from '../app/config.js'
import { listen } from './helpers/server.js'

/** Debian's Chromium, installed by scripts/install-system-deps.sh; never a downloaded build. */
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

test('demo page in a real Chromium: two pages join a room and chat over /ws', async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-system-deps.sh as root`)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS })
  // After-hooks run in the order registered: the pages are gone before the server drains.
  t.after(() => browser.close())
  const server = await listen(t, await buildApp(loadConfig({ LOG_LEVEL: 'warn', WS_DRAIN_MS: '200' })))

  async function openDemo (): Promise<Page> {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    t.after(() => assert.deepEqual(errors, [], 'the page threw'))
    await page.goto(`${server.httpUrl}/`)
    await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 })
    await page.locator('#join button').click()
    await page.locator('#joined', { hasText: 'In room lobby' }).waitFor({ timeout: 5_000 })
    return page
  }

  const alice = await openDemo()
  const bob = await openDemo()
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
})
