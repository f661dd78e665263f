/**
 * model.prefillPrompt is async. Its promise passed to generate as `prefill` (the await forgotten) is
 * refused with a ModelInputError that says so; it used to read "prefill must be what
 * model.prefillPrompt returned", which it is. The awaited value still serves the generation.
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { ModelInputError } from '../src/model/errors.js'
import type { GenerateOptions } from '../src/model/types.js'

const fixture = useFixtureModel()

describe('generate with a prefill promise', () => {
  it('is refused, naming the missing await; the awaited prefill answers as a plain run', async () => {
    const ids = [0, ...fixture.model.tokenizer.encode('The pass key is 42137. Remember it. The pass key is')]
    const pending = fixture.model.prefillPrompt(ids, ['snapkv:budget=0.5'])
    const call = () => fixture.model.generate(ids, { prefill: pending as unknown as GenerateOptions['prefill'], policy: 'snapkv:budget=0.5', maxNewTokens: 3 })
    expect(call).toThrow(ModelInputError)
    expect(call).toThrow('generate: prefill is a promise: pass what `await model.prefillPrompt(ids, policies)` gives')
    const shared = await fixture.model.generate(ids, { prefill: await pending, policy: 'snapkv:budget=0.5', maxNewTokens: 3 }).result
    const plain = await fixture.model.generate(ids, { policy: 'snapkv:budget=0.5', maxNewTokens: 3 }).result
    expect(shared.ids).toEqual(plain.ids)
  })
})
