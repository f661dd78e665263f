/**
 * generate's and prefillPrompt's options of the wrong type are named as given (shownValue: a string
 * quoted), and topP must be a number: `maxNewTokens: '4'` read "must be a positive integer, got 4", as
 * if 4 were wrong, and the prompt ['1'] "prompt[0] = 1 is not a token id"; `topP: '0.5'` and `topP: true`
 * were taken and coerced at every draw (true as 1, nucleus sampling off).
 */
import { describe, expect, it } from 'vitest'
import { useFixtureModel } from './fixture-model-helpers.js'
import { ModelInputError } from '../src/model/errors.js'

const fixture = useFixtureModel()
const prompt = [0, 11, 12, 13]

describe('generate options of the wrong type', () => {
  it('ModelInputError naming the value as given', () => {
    const cases: [unknown, Record<string, unknown>, string][] = [
      [prompt, { maxNewTokens: '4' }, 'generate: maxNewTokens must be a positive integer, got "4"'],
      [prompt, { temperature: '0' }, 'generate: temperature must be a finite number >= 0, got "0"'],
      [prompt, { topK: '5' }, 'generate: topK must be an integer >= 0 (0: off), got "5"'],
      [prompt, { topP: '0.5' }, 'generate: topP must be a number in (0, 1], got "0.5"'],
      [prompt, { topP: true }, 'generate: topP must be a number in (0, 1], got true'],
      [prompt, { topP: [0.5] }, 'generate: topP must be a number in (0, 1], got [0.5]'],
      [prompt, { seed: '7' }, 'generate: seed must be an integer, got "7"'],
      [prompt, { policy: 'snapkv', contextTokens: '2' }, 'generate: contextTokens must be an integer in [1, 3] (the prompt has 4 tokens), got "2"'],
      [[0, '1'], {}, 'generate: prompt[1] = "1" is not a token id in [0, 4096)'],
    ]
    for (const [ids, options, msg] of cases) {
      const call = () => fixture.model.generate(ids as number[], { maxNewTokens: 2, ...options })
      expect(call, msg).toThrow(ModelInputError)
      expect(call, msg).toThrow(msg)
    }
  })

  it('prefillPrompt names them the same way', async () => {
    await expect(fixture.model.prefillPrompt(prompt, ['snapkv'], { contextTokens: '2' as never })).rejects.toThrow('prefillPrompt: contextTokens must be an integer in [1, 3] (the prompt has 4 tokens), got "2"')
  })

  it('a number topP still samples as before', async () => {
    const a = await fixture.model.generate(prompt, { maxNewTokens: 4, temperature: 1, topP: 0.5, seed: 3 }).result
    const b = await fixture.model.generate(prompt, { maxNewTokens: 4, temperature: 1, topP: 0.5, seed: 3 }).result
    expect(a.ids).toEqual(b.ids)
  })
})
