import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'

// The stages' import directions are lint rules: a wrong import fails `npm run lint`.

const root = new URL('../../', import.meta.url)
const RULE = '@typescript-eslint/no-restricted-imports'

/**
 * ESLint run as `npm run lint` runs it, in a plain Node process (its dependencies do not load
 * under this test runner's TypeScript loader): each source linted as if it were `file`, and the
 * whole plugin.
 */
async function lint (sources: Array<{ file: string, source: string }>): Promise<{ each: string[][], plugin: string[] }> {
  const script = `
    import { ESLint } from 'eslint'
    const eslint = new ESLint()
    const sources = JSON.parse(process.argv[1])
    const pick = (result) => result.messages.filter((m) => m.ruleId === ${JSON.stringify(RULE)}).map((m) => m.message)
    const each = []
    for (const { file, source } of sources) each.push(pick((await eslint.lintText(source + '\\n', { filePath: file }))[0]))
    const plugin = (await eslint.lintFiles(['plugin/**/*.ts'])).flatMap((result) => pick(result).map((message) => result.filePath + ': ' + message))
    console.log(JSON.stringify({ each, plugin }))`
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(sources)], { cwd: root, maxBuffer: 1 << 24 })
  return JSON.parse(stdout) as { each: string[][], plugin: string[] }
}

const cases: Array<{ file: string, source: string, allowed: boolean }> = [
  { file: 'plugin/protocol/x.ts', source: "import { DEFAULTS } from '../defaults.js'\nexport const x = DEFAULTS", allowed: false },
  { file: 'plugin/protocol/x.ts', source: "import type { Connection } from '../connection/connection.js'\nexport type X = Connection", allowed: false },
  { file: 'plugin/protocol/x.ts', source: "import { CloseCode } from './codes.js'\nexport const x = CloseCode", allowed: true },
  { file: 'plugin/client/x.ts', source: "import { DEFAULTS } from '../defaults.js'\nexport const x = DEFAULTS", allowed: false },
  { file: 'plugin/client/x.ts', source: "import { SUBPROTOCOL } from '../protocol/frames.js'\nexport const x = SUBPROTOCOL", allowed: true },
  { file: 'plugin/broker/x.ts', source: "import { TopicHub } from '../topics/hub.js'\nexport const x = TopicHub", allowed: false },
  { file: 'plugin/broker/x.ts', source: "import { backoffDelay } from '../protocol/backoff.js'\nexport const x = backoffDelay", allowed: true },
  { file: 'plugin/telemetry/x.ts', source: "import { Connection } from '../connection/connection.js'\nexport const x = Connection", allowed: false },
  { file: 'plugin/messages/x.ts', source: "import { TopicHub } from '../topics/hub.js'\nexport const x = TopicHub", allowed: false },
  { file: 'plugin/messages/x.ts', source: "import type { Connection } from '../connection/connection.js'\nexport type X = Connection", allowed: true },
  { file: 'plugin/topics/x.ts', source: "import { Connection } from '../connection/connection.js'\nexport const x = Connection", allowed: false },
  { file: 'plugin/topics/x.ts', source: "import { PresenceHub } from '../presence/hub.js'\nexport const x = PresenceHub", allowed: false },
  { file: 'plugin/presence/x.ts', source: "import { TopicName } from '../topics/commands.js'\nexport const x = TopicName", allowed: true },
  { file: 'plugin/presence/x.ts', source: "import { Connection } from '../connection/connection.js'\nexport const x = Connection", allowed: false },
  { file: 'plugin/fleet/x.ts', source: "import { Connection } from '../connection/connection.js'\nexport const x = Connection", allowed: false },
  { file: 'plugin/connection/x.ts', source: "import { admitUpgrade } from '../upgrade/guards.js'\nexport const x = admitUpgrade", allowed: false },
  { file: 'plugin/connection/x.ts', source: "import { createInstance } from '../instance.js'\nexport const x = createInstance", allowed: false },
  { file: 'plugin/upgrade/x.ts', source: "import { RealtimeClient } from '../client/client.js'\nexport const x = RealtimeClient", allowed: false },
  { file: 'plugin/upgrade/x.ts', source: "import { Connection } from '../connection/connection.js'\nexport const x = Connection", allowed: true },
  { file: 'plugin/x.ts', source: "import { buildApp } from '../app/app.js'\nexport const x = buildApp", allowed: false }
]

test('lint refuses imports against the stages\' direction, lets the others through, and the plugin breaks none', async () => {
  const { each, plugin } = await lint(cases)
  for (const [index, { file, source, allowed }] of cases.entries()) {
    const messages = each[index] ?? []
    assert.equal(messages.length === 0, allowed, `${file}: ${source.split('\n')[0] ?? ''} → ${messages.join('; ') || 'allowed'}`)
  }
  assert.deepEqual(plugin, [])
})
