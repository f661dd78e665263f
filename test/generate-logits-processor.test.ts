import { describe, expect, it } from 'vitest'
import { NonFiniteError } from '../src/model/errors.js'
import { useFixtureModel } from './fixture-model-helpers.js'

// onLogits may change the step's logits in place before sampling (a logits processor); values that
// cannot be sampled are refused, naming the step and the token, instead of ending the generation silently.
const fixture = useFixtureModel()
const prompt = 'It is a truth universally acknowledged, that a single man'

describe('onLogits as a logits processor', () => {
  it('samples from the changed logits: banning the greedy token picks the runner-up', async () => {
    const { model } = fixture
    const seen: number[][] = []
    const plain = await model.generate(prompt, { maxNewTokens: 4, temperature: 0, onLogits: (l) => seen.push(Array.from(l)) }).result
    const runnerUp = (l: number[], banned: number) => l.reduce((best, v, j) => (j !== banned && v > l[best] ? j : best), banned === 0 ? 1 : 0)
    const banned = await model.generate(prompt, {
      maxNewTokens: 1, temperature: 0,
      onLogits: (l) => {
        l[plain.ids[0]] = -Infinity
      },
    }).result
    expect(banned.ids[0]).toBe(runnerUp(seen[0], plain.ids[0]))
    expect(banned.ids[0]).not.toBe(plain.ids[0])
  })

  it.each([
    ['NaN', Number.NaN, /onLogits left NaN at token 7 of decode step 1/],
    ['+Infinity', Infinity, /onLogits left Infinity at token 7 of decode step 1/],
  ])('refuses %s written into the logits, naming the token and step', async (_, value, message) => {
    const gen = fixture.model.generate(prompt, {
      maxNewTokens: 3, temperature: 0,
      onLogits: (l, step) => {
        if (step === 1) l[7] = value
      },
    })
    await expect(gen.result).rejects.toThrow(NonFiniteError)
    await expect(gen.result).rejects.toThrow(message)
  })

  it('refuses a step whose every token is banned', async () => {
    const gen = fixture.model.generate(prompt, { maxNewTokens: 2, temperature: 0.8, seed: 1, onLogits: (l) => l.fill(-Infinity) })
    await expect(gen.result).rejects.toThrow(/onLogits banned every token of decode step 0/)
  })
})
