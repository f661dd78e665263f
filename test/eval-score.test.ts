import { describe, expect, it } from 'vitest'
import { rulerScore, strictCorrect } from '../src/eval/score.js'

describe('scores', () => {
  it('strict: the stripped continuation must start with the stripped answer', () => {
    expect(strictCorrect(' The pass key is 12345.<junk>', ' The pass key is 12345.')).toBe(true)
    expect(strictCorrect('\n The pass key is 12345.', ' The pass key is 12345.  ')).toBe(true)
    expect(strictCorrect(' The pass key is 1234', ' The pass key is 12345.')).toBe(false)
    expect(strictCorrect(' Yes. The pass key is 12345.', ' The pass key is 12345.')).toBe(false)
  })

  it('RULER: the fraction of expected values present, case-insensitive', () => {
    expect(rulerScore(' are: 111, 333.', ['111', '222', '333', '444'])).toBe(0.5)
    expect(rulerScore(' they are: abcde FGHIJ', ['ABCDE', 'FGHIJ'])).toBe(1)
    expect(rulerScore('nothing', ['1'])).toBe(0)
    expect(() => rulerScore('x', [])).toThrow()
  })
})
