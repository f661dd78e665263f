import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { deriveWordList, loadWordList } from '../src/eval/words.js'
import { defaultBooksDir, defaultWordsFile } from '../src/eval/paths.js'

describe('word list for random keys', () => {
  it('is exactly the lowercase 4-9 letter words derived from the held-out books', () => {
    const dir = defaultBooksDir()
    const raws = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => readFileSync(join(dir, f), 'utf8'))
    const words = loadWordList(defaultWordsFile())
    expect(words).toEqual(deriveWordList(raws))
    expect(words.length).toBeGreaterThan(1000)
    for (const w of words) expect(w).toMatch(/^[a-z]{4,9}$/)
  })
})
