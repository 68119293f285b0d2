#!/usr/bin/env node
import { writeFile } from 'node:fs/promises'
import { parseOptions, usage, UsageError } from './args.js'
import { PROFILES } from './profile.js'
import { ProgressLine } from './progress.js'
import { renderHtml } from './report/html.js'
import { renderJson } from './report/json.js'
import { buildReport } from './report/model.js'
import { renderText } from './report/text.js'
import { runLoadTest } from './run.js'

/** Exit codes, for CI: 1 is reserved for failed thresholds so a pipeline can tell them apart. */
const EXIT = { passed: 0, thresholdFailed: 1, usage: 2, runFailed: 3 } as const

async function main (argv: readonly string[]): Promise<number> {
  let options
  try {
    options = parseOptions(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`error: ${err.message}\n\n${usage()}\n`)
    return EXIT.usage
  }
  if (options === undefined) {
    process.stdout.write(usage() + '\n')
    return EXIT.passed
  }

  const progress = new ProgressLine(process.stderr, options.progress, PROFILES[options.scenario], options.scenario)
  const result = await runLoadTest(options, { onSecond: (state) => progress.update(state) })
  progress.clear()
  if (result.fatal !== undefined && result.measuredMs === 0) {
    process.stderr.write(`error: ${result.fatal}\n`)
    return EXIT.runFailed
  }

  const report = buildReport(result)
  const text = renderText(report)
  if (options.json === '-') {
    // stdout carries the JSON alone, so it can be piped; people still get the text on stderr.
    process.stdout.write(renderJson(report))
    process.stderr.write(text)
  } else {
    process.stdout.write(text)
    if (options.json !== undefined) await writeFile(options.json, renderJson(report))
  }
  if (options.html !== undefined) await writeFile(options.html, renderHtml(report))

  if (result.fatal !== undefined) {
    process.stderr.write(`error: ${result.fatal}\n`)
    return EXIT.runFailed
  }
  const failed = report.thresholds.filter((threshold) => !threshold.passed)
  if (failed.length > 0) {
    process.stderr.write(`thresholds failed: ${failed.map((threshold) => threshold.expression).join(', ')}\n`)
    return EXIT.thresholdFailed
  }
  return EXIT.passed
}

// exitCode rather than exit(): stdout may still be flushing into a pipe. Every socket and worker
// is closed by now, so the process ends by itself.
process.exitCode = await main(process.argv.slice(2))
