/**
 * A user's mistakes in generate's options are refused at the call, naming the bad value, before any
 * forward pass: an onToken that is not a function (it used to fail with a TypeError at the first
 * streamed token, after the prefill) and a seed that is not an integer (NaN used to be floored to seed
 * 0's draws, 1.5 to seed 1's). A model used after dispose() throws ModelDisposedError, the class the
 * README names for a disposed model (it threw a plain ModelInputError).
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelDisposedError, ModelInputError } from '../src/model/errors.js'
import type { GenerateOptions } from '../src/model/types.js'
import { makeTinyModel } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = [0, 11, 12, 13, 14]

describe('generate refuses bad options before any work', () => {
  it('onToken that is not a function, seeds that are not integers: ModelInputError naming the value, no forward step', async () => {
    const model = await loadModel(folder, { backend: 'wasm' })
    const step = model.forward.step.bind(model.forward)
    let steps = 0
    model.forward.step = ((...a: Parameters<typeof step>) => (steps++, step(...a))) as typeof model.forward.step
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ onToken: 5 }, /onToken must be a function, got number/],
      [{ onToken: 'print' }, /onToken must be a function, got string/],
      [{ seed: NaN }, /seed must be an integer, got NaN/],
      [{ seed: 1.5 }, /seed must be an integer, got 1.5/],
      [{ seed: Infinity }, /seed must be an integer, got Infinity/],
      [{ seed: '3' }, /seed must be an integer, got 3/],
    ]
    for (const [o, msg] of bad) {
      const call = () => model.generate(prompt, { maxNewTokens: 2, temperature: 1, ...o } as GenerateOptions)
      expect(call, JSON.stringify(o)).toThrow(ModelInputError)
      expect(call, JSON.stringify(o)).toThrow(msg)
    }
    expect(steps).toBe(0)
    // integer seeds, negative ones included, still sample and repeat exactly
    for (const seed of [0, 1, -1, 2 ** 31]) {
      const a = (await model.generate(prompt, { maxNewTokens: 4, temperature: 1, seed }).result).ids
      const b = (await model.generate(prompt, { maxNewTokens: 4, temperature: 1, seed }).result).ids
      expect(b, `seed ${seed}`).toEqual(a)
    }
    model.dispose()
  })
})

describe('a disposed model', () => {
  it('generate, logits and prefillPrompt after dispose() throw ModelDisposedError (a ModelInputError)', async () => {
    const model = await loadModel(folder, { backend: 'wasm' })
    model.dispose()
    const calls: [string, () => unknown][] = [
      ['generate', () => model.generate(prompt, { maxNewTokens: 2 })],
      ['logits', () => model.logits(prompt)],
      ['prefillPrompt', () => model.prefillPrompt(prompt, ['snapkv'])],
    ]
    for (const [name, call] of calls) {
      let error: unknown
      try {
        await call()
      } catch (e) {
        error = e
      }
      expect(error, name).toBeInstanceOf(ModelDisposedError)
      expect(error, name).toBeInstanceOf(ModelInputError)
    }
  })
})
