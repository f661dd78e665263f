/**
 * model.prefillPrompt is async. Its promise passed to generate as `prefill` (the await forgotten) is
 * refused with a ModelInputError that says so; it used to read "prefill must be what
 * model.prefillPrompt returned", which it is. The awaited value still serves the generation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { ModelInputError } from '../src/model/errors.js'
import { defaultModelDir } from '../src/eval/paths.js'
import type { GenerateOptions } from '../src/model/types.js'

let model: LlamaModel
beforeAll(async () => {
  model = (await loadModel(defaultModelDir(), { backend: 'wasm', threads: 1 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('generate with a prefill promise', () => {
  it('is refused, naming the missing await; the awaited prefill answers as a plain run', async () => {
    const ids = [0, ...model.tokenizer.encode('The pass key is 42137. Remember it. The pass key is')]
    const pending = model.prefillPrompt(ids, ['snapkv:budget=0.5'])
    const call = () => model.generate(ids, { prefill: pending as unknown as GenerateOptions['prefill'], policy: 'snapkv:budget=0.5', maxNewTokens: 3 })
    expect(call).toThrow(ModelInputError)
    expect(call).toThrow('generate: prefill is a promise: pass what `await model.prefillPrompt(ids, policies)` gives')
    const shared = await model.generate(ids, { prefill: await pending, policy: 'snapkv:budget=0.5', maxNewTokens: 3 }).result
    const plain = await model.generate(ids, { policy: 'snapkv:budget=0.5', maxNewTokens: 3 }).result
    expect(shared.ids).toEqual(plain.ids)
  })
})
