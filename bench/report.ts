/*
 * How benchmark results are told: each part returns a section (tables and verdicts against
 * targets), printed as it completes and gathered into BENCHMARKS.md at the end of a full run.
 */
import { execFileSync } from 'node:child_process'
import { availableParallelism, cpus, totalmem } from 'node:os'
import { LOAD_CORE, MEASURE_MS, RUNS, SERVER_CORE, WARMUP_MS } from './harness.js'

export interface Verdict {
  target: string
  /** The measured ratio or value, as printed. */
  measured: string
  met: boolean
}

export interface Section {
  title: string
  /** What was measured and how, in a sentence or two. */
  method: string
  /** Markdown lines: one or more tables. */
  body: string[]
  verdicts: Verdict[]
}

export function verdict (target: string, ratio: number, met: boolean): Verdict {
  return { target, measured: `${ratio.toFixed(2)}×`, met }
}

export function renderSection (section: Section): string {
  const lines = [`## ${section.title}`, '', section.method, '', ...section.body]
  if (section.verdicts.length > 0) {
    lines.push('', '| target | measured | |', '| --- | ---: | --- |')
    for (const { target, measured, met } of section.verdicts) lines.push(`| ${target} | ${measured} | ${met ? 'met' : '**missed**'} |`)
  }
  return lines.join('\n') + '\n'
}

function commandOutput (program: string, args: string[]): string | undefined {
  try {
    return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

export function machineDescription (): string {
  const commit = commandOutput('git', ['rev-parse', '--short', 'HEAD']) ?? 'unknown'
  const kernel = commandOutput('uname', ['-sr']) ?? 'unknown kernel'
  return [
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${availableParallelism()} cores; ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${kernel}`,
    `- Node ${process.version}; commit ${commit}`,
    `- server pinned to core ${SERVER_CORE}, load generator to core ${LOAD_CORE} (\`taskset\`); ${RUNS} runs of ${MEASURE_MS} ms after ${WARMUP_MS} ms warm-up, peers interleaved in each run`,
    '- each figure: median (min–max) of the runs; ratios compare medians of this run only'
  ].join('\n')
}

/** The part of BENCHMARKS.md one runtime writes, between markers naming its major version. */
export function renderRuntime (sections: Section[], minutes: number, machine: string): string {
  const verdicts = sections.flatMap((section) => section.verdicts)
  const summary = ['| target | measured | |', '| --- | ---: | --- |',
    ...verdicts.map(({ target, measured, met }) => `| ${target} | ${measured} | ${met ? 'met' : '**missed**'} |`)]
  // One level down: each runtime is a chapter of the document.
  const demote = (markdown: string): string => markdown.replace(/^(#+) /gm, '#$1 ')
  return [
    runtimeMarker('start'),
    `## Node ${process.version}`,
    '',
    `Measured on ${new Date().toISOString().slice(0, 10)} in ${minutes.toFixed(0)} minutes.`,
    '',
    machine,
    '',
    '### Targets',
    '',
    ...summary,
    '',
    ...sections.map((section) => demote(renderSection(section))),
    runtimeMarker('end')
  ].join('\n')
}

function runtimeMarker (edge: 'start' | 'end'): string {
  return `<!-- ${edge} of node ${process.versions.node.split('.')[0]} -->`
}

const HEADER = [
  '# Benchmarks',
  '',
  'Written by `npm run bench`, which runs every part on Node 20 and again on Node 24 (the image\'s runtime); run it again to refresh every figure.',
  'Servers and load generators are this repository\'s `bench/` code: read it to see exactly what each peer does. Ratios compare figures of the same run and runtime only.',
  ''
].join('\n')

/** `document` with this runtime's part replaced by `part` (or added after the others). */
export function withRuntime (document: string | undefined, part: string): string {
  const start = document?.indexOf(runtimeMarker('start')) ?? -1
  const end = document?.indexOf(runtimeMarker('end')) ?? -1
  if (document === undefined || !document.startsWith(HEADER)) return `${HEADER}\n${part}\n`
  if (start === -1 || end === -1) return `${document.trimEnd()}\n\n${part}\n`
  return document.slice(0, start) + part + document.slice(end + runtimeMarker('end').length)
}
