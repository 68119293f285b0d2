/*
 * Every comparison on the running Node, each section printed as it completes, then this
 * runtime's part of BENCHMARKS.md rewritten from the figures (`npm run bench` runs it on Node
 * 20 and on Node 24). BENCH_PARTS=echo,fanout,… runs some parts only and rewrites just their
 * sections in this runtime's part of the file, once a full run has written it.
 */
import { readFile, writeFile } from 'node:fs/promises'
import { runBroker } from './broker.js'
import { runConnections } from './connections.js'
import { runEcho } from './echo.js'
import { runFanout } from './fanout.js'
import { runFleet } from './fleet.js'
import { MULTI_CORE } from './harness.js'
import { runObservability } from './observability.js'
import { runPresence } from './presence.js'
import { machineDescription, renderRuntime, renderSection, withParts, withRuntime, type Section } from './report.js'

const PARTS: Record<string, () => Promise<Section>> = {
  echo: runEcho,
  fanout: runFanout,
  connections: runConnections,
  presence: runPresence,
  observability: runObservability,
  fleet: runFleet,
  // Last: it pins this process to the load core for its in-process clients.
  broker: runBroker
}

const chosen = process.env.BENCH_PARTS?.split(',') ?? Object.keys(PARTS)
const unknown = chosen.filter((part) => PARTS[part] === undefined)
if (unknown.length > 0) throw new Error(`unknown BENCH_PARTS ${unknown.join(', ')}: use ${Object.keys(PARTS).join(', ')}`)

console.log('fastify-realtime benchmarks')
// Read before any part runs: the broker part pins this process to one core.
const machine = machineDescription()
console.log(machine)
if (!MULTI_CORE) console.log('warning: one core only, server and load generator share it')
const startedAt = performance.now()
const sections = new Map<string, Section>()
for (const part of chosen) {
  const section = await PARTS[part]!()
  sections.set(part, section)
  console.log('\n' + renderSection(section))
}
const minutes = (performance.now() - startedAt) / 60_000
const file = new URL('../BENCHMARKS.md', import.meta.url)
const previous = await readFile(file, 'utf8').catch(() => undefined)
if (chosen.length === Object.keys(PARTS).length) {
  await writeFile(file, withRuntime(previous, renderRuntime(sections, minutes, machine)))
  console.log(`BENCHMARKS.md: the part for Node ${process.version} written (${minutes.toFixed(1)} minutes)`)
} else {
  const refreshed = withParts(previous, sections)
  if (refreshed === undefined) {
    console.log(`BENCHMARKS.md has no part for Node ${process.version} yet: a full run writes it`)
  } else {
    await writeFile(file, refreshed)
    console.log(`BENCHMARKS.md: ${chosen.join(', ')} rewritten in the part for Node ${process.version} (${minutes.toFixed(1)} minutes)`)
  }
}
const missed = [...sections.values()].flatMap((section) => section.verdicts).filter((verdict) => !verdict.met)
if (missed.length > 0) console.log(`targets missed: ${missed.map((verdict) => verdict.target).join('; ')}`)
