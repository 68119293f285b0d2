import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import type { TestContext } from 'node:test'
import { chromium, type Browser, type Page } from 'playwright-core'

/** Debian's Chromium, installed by scripts/install-system-deps.sh; never a downloaded build. */
const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Debian's Chromium, headless, closed after the test; `flags` are added to the usual ones. */
export async function launchChromium (t: TestContext, flags: string[] = []): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-system-deps.sh as root`)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_FLAGS, ...flags] })
  // After-hooks run in the order registered: the pages are gone before the server drains.
  t.after(() => browser.close())
  return browser
}

/** The demo page at `url`, connected and joined to the lobby; the test fails if the page throws. */
export async function openDemo (t: TestContext, browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage()
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  t.after(() => assert.deepEqual(errors, [], 'the page threw'))
  await page.goto(url)
  await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 })
  await page.locator('#join button').click()
  await page.locator('#joined', { hasText: 'In room lobby' }).waitFor({ timeout: 5_000 })
  return page
}
