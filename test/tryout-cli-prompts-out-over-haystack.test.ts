/**
 * `kvkit prompts --out FILE` naming its own --haystack file (or one of --books) exits 2 before any work
 * and leaves the text as it was. The samples were built from the text and then written over it: exit 0,
 * and the user's haystack replaced by JSONL.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { cli } from './cli-capture.js'

describe('prompts --out over its own haystack', () => {
  it.each(['--haystack', '--books'])('%s: exit 2 naming it, the text untouched', async (flag) => {
    const book = join(mkdtempSync(join(tmpdir(), 'kvkit-out-haystack-')), 'book.txt')
    copyFileSync('data/books/11-0.txt', book)
    const before = readFileSync(book, 'utf8')
    const r = await cli('prompts', '--model', 'models/fixture-14m', '--task', 'passkey', '--length', '512', '--samples', '1', flag, book, '--out', book)
    expect(r.code).toBe(2)
    expect(r.stderr).toBe(`kvkit: --out ${book} is the ${flag} file ${book}: the output would overwrite what the run reads\n`)
    expect(readFileSync(book, 'utf8')).toBe(before)
  })
})
