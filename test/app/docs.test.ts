import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ClientErrorCode } from '../../plugin/client/index.js'
import { BrokerUnavailableError, ErrorCode, errors } from '../../plugin/index.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const read = (path: string): string => readFileSync(join(root, path), 'utf8')
const pages = ['README.md', ...readdirSync(join(root, 'docs')).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]

/** The text outside fenced code blocks and inline code, where links and headings are markdown. */
function prose (markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '')
}

/** The anchors GitHub gives a page's headings: lowercased, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors (markdown: string): Set<string> {
  const seen = new Map<string, number>()
  const found = new Set<string>()
  const text = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '')
  for (const [, heading] of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = (heading as string)
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    found.add(count === 0 ? slug : `${slug}-${count}`)
  }
  for (const [, id] of markdown.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) found.add(id as string)
  return found
}

/** Every inline and reference-style link target of a page, outside code. */
function links (markdown: string): string[] {
  const text = prose(markdown)
  const inline = [...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((match) => match[1] as string)
  const references = [...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((match) => match[1] as string)
  return [...inline, ...references]
}

test('every relative link in README.md and docs/*.md reaches a file, and every #anchor a heading of it', () => {
  const broken: string[] = []
  let checked = 0
  for (const page of pages) {
    const markdown = read(page)
    for (const target of links(markdown)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto:: not files of this repository
      checked++
      const [path = '', anchor] = target.split('#', 2) as [string, string | undefined]
      const file = path === '' ? join(root, page) : join(root, dirname(page), decodeURIComponent(path))
      if (relative(root, file).startsWith('..') || !existsSync(file)) {
        broken.push(`${page}: ${target} (no such file)`)
        continue
      }
      if (anchor === undefined || anchor === '') continue
      if (!file.endsWith('.md') || statSync(file).isDirectory()) continue
      if (!anchors(read(relative(root, file))).has(decodeURIComponent(anchor))) broken.push(`${page}: ${target} (no such heading)`)
    }
  }
  assert.deepEqual(broken, [])
  assert.ok(checked > 50, `only ${checked} relative links found: the extraction is broken`)
})

test('the anchors follow GitHub\'s rules, so the link check means what a reader clicks', () => {
  const found = anchors('# Errors and codes\n## Sent to clients (`$error` codes)\n## Close codes\n## Close codes\n```md\n## not a heading\n```\n## [Linked](x.md) heading')
  assert.deepEqual([...found], ['errors-and-codes', 'sent-to-clients-error-codes', 'close-codes', 'close-codes-1', 'linked-heading'])
  assert.deepEqual(links('[a](b.md#c) `[no](code.md)` [ref]: d.md\n[ref]: e.md\n```\n[no](fenced.md)\n```'), ['b.md#c', 'e.md'])
})

/** The rows of the table whose header starts with `| firstHeader |`, as arrays of cells without backticks. */
function tableRows (markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((line) => line.startsWith(`| ${firstHeader} |`))
  assert.ok(start >= 0, `a table headed "${firstHeader}"`)
  const rows: string[][] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.replace(/\\\|/g, '¦').split('|').slice(1, -1).map((cell) => cell.trim().replaceAll('`', '')))
  }
  return rows
}

test('docs/errors.md explains every code the package has, and no code it does not', () => {
  const page = read('docs/errors.md')
  const thrown = Object.values(errors).map((ErrorClass) => new ErrorClass('a', 'b').code)
  const sections: Array<[string, string[]]> = [
    ['thrown code', thrown],
    ['$error code', Object.values(ErrorCode)],
    ['client code', Object.values(ClientErrorCode)]
  ]
  for (const [header, codes] of sections) {
    const rows = tableRows(page, header)
    assert.deepEqual(rows.map((row) => row[0]).sort(), [...codes].sort(), `the "${header}" table lists exactly the code's codes`)
    for (const [code, when, todo] of rows) {
      assert.notEqual(when ?? '', '', `${code}: when`)
      assert.notEqual(todo ?? '', '', `${code}: what to do`)
    }
  }
  assert.ok(thrown.length >= 7 && Object.values(ClientErrorCode).length >= 6)
  assert.ok(page.includes(`\`${new BrokerUnavailableError('x').code}\``), 'the broker error a publish rejects with')
  assert.match(page, /\(PROTOCOL\.md#close-codes\)/, 'a pointer to the close-code table')
})
