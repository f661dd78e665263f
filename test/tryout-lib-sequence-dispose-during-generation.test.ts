/**
 * Sequence.dispose() while a generation runs on it lets that generation finish with the answer it
 * would give undisturbed (it used to fail with "KVCache: used after dispose()" on the freed pages), and
 * frees the cache when it ends; the sequence then refuses any use (ReuseError).
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { Sequence } from '../src/reuse/sequence.js'
import { ReuseError } from '../src/reuse/errors.js'

const fixture = useFixtureModel()

describe('Sequence.dispose during a generation', () => {
  it('the generation finishes as undisturbed, then the sequence is gone and its pages freed', async () => {
    const turn1 = [0, ...fixture.model.tokenizer.encode('The pass key is 42137. Remember it.')]
    const turn2 = fixture.model.tokenizer.encode(' What is the pass key? The pass key is')
    const undisturbed = Sequence.create(fixture.model)
    await fixture.model.generate(turn1, { reuse: undisturbed, maxNewTokens: 3 }).result
    const expected = (await fixture.model.generate(turn2, { reuse: undisturbed, maxNewTokens: 12 }).result).ids
    undisturbed.dispose()

    const seq = Sequence.create(fixture.model)
    await fixture.model.generate(turn1, { reuse: seq, maxNewTokens: 3 }).result
    let disposedAt = -1
    const gen = fixture.model.generate(turn2, {
      reuse: seq, maxNewTokens: 12,
      onToken: () => {
        if (disposedAt < 0) disposedAt = seq.tokens.length
        seq.dispose()
      },
    })
    expect((await gen.result).ids).toEqual(expected)
    expect(disposedAt).toBeGreaterThan(0)
    expect(() => seq.fork()).toThrow(ReuseError)
    expect(() => fixture.model.generate(turn2, { reuse: seq, maxNewTokens: 2 })).toThrow('the sequence was disposed')
    // its cache was freed when the generation ended
    expect(() => seq.cache.length(0, 0)).toThrow('used after dispose()')
  })
})
