/**
 * blockHashes (exported from the root entry) refuses bad arguments with a ReuseError naming them before
 * hashing: a blockTokens of 0 made its default block count Infinity, a loop that never ended (the call
 * hung, its output growing); a token id that is not one (-1, 1.5, a missing one) was hashed as another
 * id (4294967295, 1, 0), so distinct prompts shared a key.
 */
import { describe, expect, it } from 'vitest'
import { blockHashes } from '../src/index.js'
import { ReuseError } from '../src/reuse/errors.js'

describe('blockHashes arguments', () => {
  it.each([
    ['blockTokens 0', () => blockHashes([1, 2], 0, ''), 'blockHashes: blockTokens must be a positive integer, got 0'],
    ['blockTokens as a string', () => blockHashes([1, 2], '2' as never, ''), 'blockHashes: blockTokens must be a positive integer, got "2"'],
    ['ids as a string', () => blockHashes('12' as never, 1, ''), 'blockHashes: ids must be an array of token ids, got string'],
    ['a salt that is not a string', () => blockHashes([1, 2], 1, undefined as never), 'blockHashes: salt must be a string, got undefined'],
    ['more blocks than ids hold', () => blockHashes([1, 2, 3], 2, '', 2), 'blockHashes: blocks must be an integer in [0, 1] (whole blocks of 2 in 3 ids), got 2'],
    ['a negative token id', () => blockHashes([1, -1], 2, ''), 'blockHashes: ids[1] = -1 is not a token id'],
    ['a fractional token id', () => blockHashes([1.5, 2], 1, ''), 'blockHashes: ids[0] = 1.5 is not a token id'],
  ])('%s: ReuseError naming it', (_, call, message) => {
    expect(call).toThrow(new ReuseError(message))
  })

  it('good arguments hash as before: chained, salted, an empty chunk as one block', () => {
    const [a, b] = blockHashes([1, 2, 3, 4, 5], 2, 'alice')
    expect(blockHashes([1, 2, 3, 4, 9], 2, 'alice')).toEqual([a, b])
    expect(blockHashes([1, 2], 2, 'bob')[0]).not.toBe(a)
    expect(blockHashes([], 0, 'chunk', 1)).toHaveLength(1)
  })
})
