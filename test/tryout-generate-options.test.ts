/**
 * A user's mistakes in generate's options are refused at the call, naming the bad value, before any
 * forward pass: an onToken that is not a function (it used to fail with a TypeError at the first
 * streamed token, after the prefill) and a seed that is not an integer (NaN used to be floored to seed
 * 0's draws, 1.5 to seed 1's). A model used after dispose() throws ModelDisposedError, the class the
 * README names for a disposed model (it threw a plain ModelInputError). An option generate does not know
 * (`max_new_tokens`, `maxTokens`) is refused: it was ignored and its default used (128 new tokens).
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelDisposedError, ModelInputError } from '../src/model/errors.js'
import type { GenerateOptions } from '../src/model/types.js'
import { makeTinyModel } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = [0, 11, 12, 13, 14]

/** a model whose forward steps are counted: a refused call must not have run one */
async function countingSteps() {
  const model = await loadModel(folder, { backend: 'wasm' })
  const step = model.forward.step.bind(model.forward)
  let n = 0
  model.forward.step = ((...a: Parameters<typeof step>) => (n++, step(...a))) as typeof model.forward.step
  return { model, steps: () => n }
}

describe('generate refuses bad options before any work', () => {
  it('onToken that is not a function, seeds that are not integers: ModelInputError naming the value, no forward step', async () => {
    const { model, steps } = await countingSteps()
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ onToken: 5 }, /onToken must be a function, got number/],
      [{ onToken: 'print' }, /onToken must be a function, got string/],
      [{ seed: NaN }, /seed must be an integer, got NaN/],
      [{ seed: 1.5 }, /seed must be an integer, got 1.5/],
      [{ seed: Infinity }, /seed must be an integer, got Infinity/],
      [{ seed: '3' }, /seed must be an integer, got "3"/],
    ]
    for (const [o, msg] of bad) {
      const call = () => model.generate(prompt, { maxNewTokens: 2, temperature: 1, ...o } as GenerateOptions)
      expect(call, JSON.stringify(o)).toThrow(ModelInputError)
      expect(call, JSON.stringify(o)).toThrow(msg)
    }
    expect(steps()).toBe(0)
    // integer seeds, negative ones included, still sample and repeat exactly
    for (const seed of [0, 1, -1, 2 ** 31]) {
      const a = (await model.generate(prompt, { maxNewTokens: 4, temperature: 1, seed }).result).ids
      const b = (await model.generate(prompt, { maxNewTokens: 4, temperature: 1, seed }).result).ids
      expect(b, `seed ${seed}`).toEqual(a)
    }
    model.dispose()
  })
})

describe('generate refuses options it does not know', () => {
  it('a misspelt option (max_new_tokens, maxTokens, budget): ModelInputError naming it, no forward step', async () => {
    const { model, steps } = await countingSteps()
    for (const key of ['max_new_tokens', 'maxTokens', 'budget']) {
      const call = () => model.generate(prompt, { [key]: 2 } as GenerateOptions)
      expect(call, key).toThrow(ModelInputError)
      expect(call, key).toThrow(`generate: unknown option "${key}"; options: maxNewTokens, temperature`)
    }
    expect(() => model.generate(prompt, null as never)).toThrow('generate: options must be an object, got null')
    expect(steps()).toBe(0)
    // every documented option is still taken
    const r = await model.generate(prompt, { maxNewTokens: 2, temperature: 0, topP: 1, topK: 0, seed: 1, stop: ['zz'], signal: new AbortController().signal, onToken: () => {}, onKept: () => {}, onLogits: () => {}, kvDtype: 'float32', policy: 'full' }).result
    expect(r.ids).toHaveLength(2)
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
