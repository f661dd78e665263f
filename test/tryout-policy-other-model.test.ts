/**
 * A Policy built by createPolicy for one model and passed to a model of another shape is refused at
 * generate's call, naming both shapes. It ran: ShadowKV failed deep inside the cache ("KVCache: layer 4
 * is outside [0, 4)") once the generation ran, and PyramidKV, WindowKV or a composition decided by
 * tables sized for the other model, silently. A spec string or a factory's setting is made for the model
 * that runs it, and a policy built for a model of the same shape (another load of it) is taken.
 */
import { describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicySpecError } from '../src/policies/registry.js'
import { pyramidkv } from '../src/policies/factories.js'
import { makeTinyModel, TINY } from './tiny-model.js'

const folder = makeTinyModel({ eos_token_id: null })
const prompt = [0, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]

describe('a built policy on a model of another shape', () => {
  it('made for the fixture, run on the tiny model: PolicySpecError at the call naming both shapes', async () => {
    const tiny = await loadModel(folder, { backend: 'wasm' })
    const fixture = await loadModel('models/fixture-14m', { backend: 'wasm' })
    for (const spec of ['snapkv', 'pyramidkv', 'windowkv', 'shadowkv', 'snapkv+think']) {
      const policy = createPolicy(spec, fixture.config)!
      const call = () => tiny.generate(prompt, { maxNewTokens: 2, policy })
      expect(call, spec).toThrow(PolicySpecError)
      expect(call, spec).toThrow(`was made for a model of layers 8, qHeads 6, kvHeads 2, headDim 64, hidden 384, this one has layers ${TINY.LAYERS}, qHeads ${TINY.NH}, kvHeads ${TINY.KVH}, headDim ${TINY.D}, hidden ${TINY.H}`)
    }
    // the spec or the setting is made for the model that runs it
    expect((await tiny.generate(prompt, { maxNewTokens: 2, policy: 'pyramidkv' }).result).ids).toHaveLength(2)
    expect((await tiny.generate(prompt, { maxNewTokens: 2, policy: pyramidkv({ budget: 0.5 }) }).result).ids).toHaveLength(2)
    fixture.dispose()
    // another load of the same folder has the same shape: the policy serves both, token for token
    const twin = await loadModel(folder, { backend: 'wasm' })
    const policy = createPolicy('pyramidkv', tiny.config)!
    const want = (await tiny.generate(prompt, { maxNewTokens: 3, policy }).result).ids
    expect((await twin.generate(prompt, { maxNewTokens: 3, policy }).result).ids).toEqual(want)
    tiny.dispose()
    twin.dispose()
  })
})
