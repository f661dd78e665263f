import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deriveWordList, loadWordList } from '../src/eval/words.js'
import { defaultWordsFile } from '../src/eval/paths.js'

describe('word list for random keys', () => {
  it('is train.py\'s key list: 3351 sorted lowercase 4-9 letter words, as Python computed it', () => {
    const words = loadWordList(defaultWordsFile())
    expect(words).toHaveLength(3351)
    for (const w of words) expect(w).toMatch(/^[a-z]{4,9}$/)
    expect(words).toEqual([...new Set(words)].sort())
    // sha256 of '\n'.join(WORDS) from train.py's own code run on the training book (1155-0.txt)
    expect(createHash('sha256').update(words.join('\n')).digest('hex').slice(0, 16)).toBe('0e84d5d5cc27ca4f')
  })

  it('derives a list the way train.py does: whole lowercase words of 4 to 9 letters, after cleaning', () => {
    expect(deriveWordList(['The quick brown\nfox jumps over lazy dogs; Alice wondered, extraordinarily: ok ok "quick"'])).toEqual(
      ['brown', 'dogs', 'jumps', 'lazy', 'over', 'quick', 'wondered'])
  })
})
