/**
 * `kvkit eval --prompts FILE --json FILE` (the same file, spelt alike or not) exits 2 before any work
 * and leaves the samples as they were. The run started, and the first finished cell's results replaced
 * the JSONL it was reading. The same for a --haystack or --books file: the results replaced the book.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('eval --json over its own --prompts file', () => {
  it('exit 2 naming both; the samples untouched', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvkit-json-prompts-'))
    const prompts = join(dir, 'samples.jsonl')
    const made = await cli('prompts', '--model', 'models/fixture-14m', '--task', 'passkey', '--length', '512', '--samples', '1', '--out', prompts)
    expect(made.code).toBe(0)
    const before = readFileSync(prompts, 'utf8')
    for (const json of [prompts, relative(process.cwd(), prompts)]) {
      const r = await cli('eval', '--model', 'models/fixture-14m', '--policy', 'full', '--workers', '1', '--backend', 'wasm', '--prompts', prompts, '--json', json)
      expect(r.code).toBe(2)
      expect(r.stderr).toBe(`kvkit: --json ${json} is the --prompts file ${prompts}: the output would overwrite what the run reads\n`)
      expect(readFileSync(prompts, 'utf8')).toBe(before)
    }
  })

  it.each(['--haystack', '--books'])('%s: exit 2 naming it; the book untouched', async (flag) => {
    const book = join(mkdtempSync(join(tmpdir(), 'kvkit-json-book-')), 'book.txt')
    copyFileSync('data/books/11-0.txt', book)
    const before = readFileSync(book, 'utf8')
    const r = await cli('eval', '--model', 'models/fixture-14m', '--policy', 'full', '--task', 'passkey', '--length', '512', '--samples', '1', '--workers', '1', '--backend', 'wasm', flag, book, '--json', book)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: --json ${book} is the ${flag} file ${book}: the output would overwrite what the run reads\n`)
    expect(readFileSync(book, 'utf8')).toBe(before)
  })
})
