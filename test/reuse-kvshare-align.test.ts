import { describe, expect, it } from 'vitest'
import { alignTokens } from '../src/reuse/token-align.js'
import { ReuseError } from '../src/reuse/errors.js'
import { seededRandom } from '../src/model/sampling.js'

// KVShare's token alignment: hand-made edits with one right answer, and random edits against an
// independent twin (the textbook O(NM) longest-common-subsequence table), since a minimal edit script
// keeps exactly a longest common subsequence.

/** LCS length by dynamic programming: the twin */
function lcs(a: readonly number[], b: readonly number[]): number {
  let prev = new Int32Array(b.length + 1)
  for (let i = 1; i <= a.length; i++) {
    const cur = new Int32Array(b.length + 1)
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1])
    prev = cur
  }
  return prev[b.length]
}

const base = [10, 11, 12, 13, 14, 15, 16, 17]

describe('alignTokens on hand-made edits', () => {
  it.each([
    // name, prompt, source map, first edit
    ['an unedited repeat', base, [0, 1, 2, 3, 4, 5, 6, 7], 8],
    ['an insertion in the middle', [10, 11, 12, 90, 91, 13, 14, 15, 16, 17], [0, 1, 2, -1, -1, 3, 4, 5, 6, 7], 3],
    ['an insertion at the start', [90, 10, 11, 12, 13, 14, 15, 16, 17], [-1, 0, 1, 2, 3, 4, 5, 6, 7], 0],
    ['an insertion at the end (an extension)', [...base, 90], [0, 1, 2, 3, 4, 5, 6, 7, -1], 8],
    ['a deletion in the middle', [10, 11, 12, 15, 16, 17], [0, 1, 2, 5, 6, 7], 3],
    ['a deletion at the start', [12, 13, 14, 15, 16, 17], [2, 3, 4, 5, 6, 7], 0],
    ['a deletion at the end (a prefix)', [10, 11, 12, 13], [0, 1, 2, 3], 4],
    ['a replacement of two tokens', [10, 11, 90, 91, 14, 15, 16, 17], [0, 1, -1, -1, 4, 5, 6, 7], 2],
    ['a replacement by a longer span', [10, 11, 90, 91, 92, 93, 14, 15, 16, 17], [0, 1, -1, -1, -1, -1, 4, 5, 6, 7], 2],
    ['a replacement plus a deletion elsewhere', [10, 90, 12, 13, 14, 16, 17], [0, -1, 2, 3, 4, 6, 7], 1],
    ['an empty prompt', [], [], 0],
    ['nothing in common', [90, 91, 92], [-1, -1, -1], 0],
  ])('%s', (_name, prompt, source, firstEdit) => {
    const a = alignTokens(base, prompt)!
    expect(Array.from(a.source)).toEqual(source)
    expect(a.matched).toBe(source.filter((s) => s >= 0).length)
    expect(a.firstEdit).toBe(firstEdit)
  })

  it('gives up when the script needs more edits than maxEdits, and not at exactly maxEdits', () => {
    const prompt = [10, 11, 90, 91, 14, 15, 16, 17] // 2 deletions + 2 insertions
    expect(alignTokens(base, prompt, 3)).toBeUndefined()
    expect(alignTokens(base, prompt, 4)?.matched).toBe(6)
  })
})

describe('alignTokens against the LCS twin on random edits', () => {
  it.each([
    // tokens, edits, alphabet
    [50, 1, 1000],
    [200, 5, 1000],
    [300, 20, 30],
    [120, 60, 8],
  ])('%i tokens, %i random edits, %i distinct tokens: matched is the LCS length and the map is a valid alignment', (n, edits, alphabet) => {
    const rand = seededRandom(n * 31 + edits)
    for (let trial = 0; trial < 5; trial++) {
      const cached = Array.from({ length: n }, () => Math.floor(rand() * alphabet))
      const prompt = cached.slice()
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (prompt.length + 1))
        const kind = Math.floor(rand() * 3)
        if (kind === 0) prompt.splice(at, 0, Math.floor(rand() * alphabet))
        else if (kind === 1 && prompt.length) prompt.splice(Math.min(at, prompt.length - 1), 1)
        else if (prompt.length) prompt[Math.min(at, prompt.length - 1)] = Math.floor(rand() * alphabet)
      }
      const a = alignTokens(cached, prompt)!
      expect(a.matched).toBe(lcs(cached, prompt))
      let last = -1
      a.source.forEach((s, j) => {
        if (s < 0) return
        expect(cached[s]).toBe(prompt[j])
        expect(s).toBeGreaterThan(last)
        last = s
      })
      let prefix = 0
      while (prefix < prompt.length && prefix < cached.length && prompt[prefix] === cached[prefix]) prefix++
      expect(a.firstEdit).toBe(prefix)
    }
  })
})

describe('alignTokens misuse', () => {
  it.each([
    ['cached not an array', () => alignTokens('abc' as never, [1])],
    ['a prompt token that is not an integer', () => alignTokens([1], [1, 2.5])],
    ['maxEdits -1', () => alignTokens([1], [1], -1)],
  ])('%s is a ReuseError', (_n, f) => {
    expect(f).toThrow(ReuseError)
  })
})
