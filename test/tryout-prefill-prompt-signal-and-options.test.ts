/**
 * model.prefillPrompt takes `signal`, seen between prefill chunks as generate's is, and refuses an
 * option it does not know (ModelInputError naming it). It took only kvDtype and contextTokens and
 * ignored the rest: `{ signal }` was dropped, so a prefill of a long prompt (the most expensive call
 * of a policy comparison) could not be stopped, and `{ contextToken: 3 }` prefilled the whole prompt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelInputError } from '../src/model/errors.js'
import type { LlamaModel } from '../src/model/model.js'
import { makeTinyModel } from './tiny-model.js'

const prompt = [0, ...Array.from({ length: 23 }, (_, i) => 11 + i)]
let model: LlamaModel

beforeAll(async () => {
  // 4-token chunks: the prompt's prefill is six chunks, an abort has places to be seen
  model = (await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm', threads: 1, chunk: 4 })) as LlamaModel
})
afterAll(() => model?.dispose())

describe('prefillPrompt options', () => {
  it('an option it does not know, a signal that is not one: ModelInputError naming it, before any work', async () => {
    await expect(model.prefillPrompt(prompt, ['snapkv'], { contextToken: 3 } as never)).rejects.toThrow(ModelInputError)
    await expect(model.prefillPrompt(prompt, ['snapkv'], { contextToken: 3 } as never)).rejects.toThrow('prefillPrompt: unknown option "contextToken"; options: kvDtype, contextTokens, signal')
    await expect(model.prefillPrompt(prompt, ['snapkv'], { signal: 'stop' } as never)).rejects.toThrow('prefillPrompt: signal must be an AbortSignal')
  })

  it('an aborted signal rejects with its reason, before and during the prefill', async () => {
    const before = new AbortController()
    before.abort(new Error('stopped before'))
    await expect(model.prefillPrompt(prompt, ['snapkv'], { signal: before.signal })).rejects.toThrow('stopped before')
    const during = new AbortController()
    const running = model.prefillPrompt(prompt, ['snapkv'], { signal: during.signal })
    // the first chunk has run; the abort is seen before the second
    during.abort(new Error('stopped during'))
    await expect(running).rejects.toThrow('stopped during')
  })

  it('a signal never aborted leaves the prefill as without it: the same generation', async () => {
    const want = (await model.generate(prompt, { maxNewTokens: 4, policy: 'snapkv:budget=0.5' }).result).ids
    const pre = await model.prefillPrompt(prompt, ['snapkv:budget=0.5'], { signal: new AbortController().signal })
    expect((await model.generate(prompt, { maxNewTokens: 4, policy: 'snapkv:budget=0.5', prefill: pre }).result).ids).toEqual(want)
  })
})
