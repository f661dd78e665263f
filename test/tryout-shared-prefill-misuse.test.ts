/**
 * Shared prefills (model.prefillPrompt) misused are refused at the call with ModelInputError:
 * - a prefill passed to a model of another shape threw a CacheError from deep inside the cache (append:
 *   k must be a Float32Array of ...) once the generation ran; the message now names both shapes. A model
 *   of the same shape (another load of the same folder) still takes it;
 * - `prefill: {}` threw "options.prefill?.check is not a function";
 * - `prefillPrompt(ids, 'snapkv')` (a spec, not a list) threw "policies.map is not a function".
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { ModelInputError } from '../src/model/errors.js'
import { makeTinyModel, TINY } from './tiny-model.js'

const tiny = makeTinyModel({ eos_token_id: null })
const other = 'models/fixture-14m' // 8 layers x 2 KV heads x 64 channels
const prompt = [0, 11, 12, 13, 14, 15, 16]

describe('a shared prefill on another model', () => {
  it('another shape: ModelInputError at the call; the same shape: the tokens of its own prefill', async () => {
    const a = await loadModel(tiny, { backend: 'wasm' })
    const b = await loadModel(other, { backend: 'wasm' })
    const twin = await loadModel(tiny, { backend: 'wasm' })
    const pre = await a.prefillPrompt(prompt, ['snapkv'])
    const call = () => b.generate(prompt, { maxNewTokens: 3, policy: 'snapkv', prefill: pre })
    expect(call).toThrow(ModelInputError)
    expect(call).toThrow(`the shared prefill was made by a model of ${TINY.LAYERS} layers x 2 KV heads x ${TINY.D} channels, this one has 8 layers x 2 KV heads x 64 channels`)
    const want = (await twin.generate(prompt, { maxNewTokens: 3, policy: 'snapkv' }).result).ids
    expect((await twin.generate(prompt, { maxNewTokens: 3, policy: 'snapkv', prefill: pre }).result).ids).toEqual(want)
    for (const m of [a, b, twin]) m.dispose()
  })

  it('a prefill that is not one, policies that are not a list: ModelInputError naming them', async () => {
    const a = await loadModel(tiny, { backend: 'wasm' })
    const fake = () => a.generate(prompt, { maxNewTokens: 2, prefill: {} as never })
    expect(fake).toThrow(ModelInputError)
    expect(fake).toThrow('generate: prefill must be what model.prefillPrompt returned')
    await expect(a.prefillPrompt(prompt, 'snapkv' as never)).rejects.toThrow(ModelInputError)
    await expect(a.prefillPrompt(prompt, 'snapkv' as never)).rejects.toThrow('prefillPrompt: policies must be an array (of spec strings, settings or policies), got string')
    a.dispose()
  })
})
