/*
 * How benchmark results are told: each part returns a section (tables and verdicts against
 * targets), printed as it completes and gathered into BENCHMARKS.md at the end of a full run;
 * a run of some parts replaces just their sections there, each between markers naming its part.
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

/** The head of every verdict table: each section's, and the chapter's summary of them all under `TARGETS`. */
const VERDICT_HEAD = ['| target | measured | |', '| --- | ---: | --- |']
const TARGETS = '### Targets'

function verdictRows (verdicts: Verdict[]): string[] {
  return verdicts.map(({ target, measured, met }) => `| ${target} | ${measured} | ${met ? 'met' : '**missed**'} |`)
}

export function renderSection (section: Section): string {
  const lines = [`## ${section.title}`, '', section.method, '', ...section.body]
  if (section.verdicts.length > 0) lines.push('', ...VERDICT_HEAD, ...verdictRows(section.verdicts))
  return lines.join('\n') + '\n'
}

function commandOutput (program: string, args: string[]): string | undefined {
  try {
    return execFileSync(program, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    return undefined
  }
}

/** Read as the run starts, like the machine: the tree may move on while it runs. */
const COMMIT = commandOutput('git', ['rev-parse', '--short', 'HEAD']) ?? 'unknown'

function today (): string {
  return new Date().toISOString().slice(0, 10)
}

export function machineDescription (): string {
  const kernel = commandOutput('uname', ['-sr']) ?? 'unknown kernel'
  return [
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${availableParallelism()} cores; ${(totalmem() / 2 ** 30).toFixed(0)} GiB; ${kernel}`,
    `- Node ${process.version}; commit ${COMMIT}`,
    `- server pinned to core ${SERVER_CORE}, load generator to core ${LOAD_CORE} (\`taskset\`); ${RUNS} runs of ${MEASURE_MS} ms after ${WARMUP_MS} ms warm-up, peers interleaved in each run`,
    '- each figure: median (min–max) of the runs; ratios compare medians of this run only'
  ].join('\n')
}

/** A section as a chapter holds it: one level down, between markers naming its part. */
function renderPart (part: string, section: Section): string {
  // One level down: each runtime is a chapter of the document.
  const demoted = renderSection(section).replace(/^(#+) /gm, '#$1 ')
  return `${partMarker('start', part)}\n${demoted}\n${partMarker('end', part)}`
}

/** The part of BENCHMARKS.md one runtime writes, between markers naming its major version. */
export function renderRuntime (sections: Map<string, Section>, minutes: number, machine: string): string {
  const verdicts = [...sections.values()].flatMap((section) => section.verdicts)
  return [
    runtimeMarker('start'),
    `## Node ${process.version}`,
    '',
    `Measured on ${today()} in ${minutes.toFixed(0)} minutes.`,
    '',
    machine,
    '',
    TARGETS,
    '',
    ...VERDICT_HEAD,
    ...verdictRows(verdicts),
    '',
    ...[...sections].map(([part, section]) => renderPart(part, section) + '\n'),
    runtimeMarker('end')
  ].join('\n')
}

function runtimeMarker (edge: 'start' | 'end'): string {
  return `<!-- ${edge} of node ${process.versions.node.split('.')[0]} -->`
}

function partMarker (edge: 'start' | 'end', part: string): string {
  return edge === 'start' ? `<!-- part ${part} -->` : `<!-- end of part ${part} -->`
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

/**
 * `document` with these sections of this runtime's chapter replaced (a part the chapter lacks is
 * added at its end), each saying when it was measured, and the chapter's targets gathered again
 * from every verdict table in it; undefined while the document has no chapter for this runtime.
 */
export function withParts (document: string | undefined, sections: Map<string, Section>): string | undefined {
  const start = document?.indexOf(runtimeMarker('start')) ?? -1
  const end = document?.indexOf(runtimeMarker('end')) ?? -1
  if (document === undefined || start === -1 || end === -1) return undefined
  const note = `_Measured alone (\`BENCH_PARTS\`) on ${today()}, Node ${process.version}, commit ${COMMIT}; the rest of this chapter is from its last full run._`
  let chapter = document.slice(start, end)
  for (const [part, section] of sections) {
    const block = renderPart(part, { ...section, method: `${note}\n\n${section.method}` })
    const from = chapter.indexOf(partMarker('start', part))
    const to = chapter.indexOf(partMarker('end', part))
    chapter = from === -1 || to === -1
      ? `${chapter.trimEnd()}\n\n${block}\n\n`
      : chapter.slice(0, from) + block + chapter.slice(to + partMarker('end', part).length)
  }
  return document.slice(0, start) + withTargets(chapter) + document.slice(end)
}

/** `chapter` with its summary of targets made again from the verdict tables below it, in order. */
function withTargets (chapter: string): string {
  const lines = chapter.split('\n')
  const targets = lines.indexOf(TARGETS)
  const head = targets === -1 ? -1 : lines.indexOf(VERDICT_HEAD[0]!, targets)
  if (head === -1) return chapter
  let after = head + VERDICT_HEAD.length
  while (lines[after]?.startsWith('|') === true) after++
  const rows: string[] = []
  for (let line = after; line < lines.length; line++) {
    if (lines[line] !== VERDICT_HEAD[0]) continue
    for (line += VERDICT_HEAD.length; lines[line]?.startsWith('|') === true; line++) rows.push(lines[line]!)
  }
  lines.splice(head + VERDICT_HEAD.length, after - head - VERDICT_HEAD.length, ...rows)
  return lines.join('\n')
}
