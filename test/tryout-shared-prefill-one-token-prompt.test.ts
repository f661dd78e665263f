/**
 * model.prefillPrompt on a one-token prompt: generate runs every policy on one (README, "Short
 * prompts"), but prefillPrompt refused it, naming an option the caller had not given ("contextTokens
 * must be an integer in [1, 0] (the prompt has 1 tokens), got 0"). It now prefills no token, as the
 * generation does, and each policy's generation from it equals its generation without it. An explicit
 * contextTokens is checked as before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ModelInputError } from '../src/model/errors.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'

const G = 'gatesFile=models/fixture-14m-trimkv/gates-M512.safetensors'
const POLICIES = [undefined, 'snapkv:budget=0.5', 'h2o:budget=0.5', 'adakv:budget=0.5+mikv:residual=0', `trimkv:budget=0.5,${G}`, 'vidkv:groupSize=128,residual=0', 'kvzip:budget=0.5', 'tokenselect', 'think+kivi:residual=0']

describe('a shared prefill of a one-token prompt', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(POLICIES.map((p) => [p ?? 'full']))('%s: the generation from it equals the one without it', async (name) => {
    const policy = name === 'full' ? undefined : name
    const prefill = await model.prefillPrompt([0], POLICIES)
    const alone = await model.generate([0], { maxNewTokens: 6, policy }).result
    const shared = await model.generate([0], { maxNewTokens: 6, policy, prefill }).result
    expect(shared.ids).toEqual(alone.ids)
    expect(shared.ids).toHaveLength(6)
  })

  it.each([0, 1, 0.5])('an explicit contextTokens %s on it is refused, naming the range', async (contextTokens) => {
    await expect(model.prefillPrompt([0], [], { contextTokens })).rejects.toThrow(ModelInputError)
    await expect(model.prefillPrompt([0], [], { contextTokens })).rejects.toThrow(`contextTokens must be an integer in [1, 0] (the prompt has 1 tokens), got ${contextTokens}`)
  })
})
