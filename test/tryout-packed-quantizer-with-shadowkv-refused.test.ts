import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { fixturePrompt } from './threads-helpers.js'

// ShadowKV moves the prompt's pages to the host tier at prefill end; a quantizer (KIVI, MiKV, VidKV)
// packs rows leaving its float window at decode steps, and rows in the host tier cannot be packed. The
// composition used to be accepted and then failed mid-generation with a CacheError once the window
// reached the moved rows (700 tokens: at the 4th decode step, tokens already streamed); it is refused
// before any work, as the README says of parts that cannot work together.

describe('a quantizer composed with ShadowKV', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['shadowkv+kivi', 'shadowkv+mikv', 'shadowkv+vidkv', 'kivi:bits=4+shadowkv'])('%s is a PolicyCompositionError at creation', (spec) => {
    expect(() => createPolicy(spec, model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy(spec, model.config)).toThrow(/host tier/)
  })

  it('the generate call throws it, before streaming a token', () => {
    const seen: number[] = []
    expect(() => model.generate(fixturePrompt(700), { maxNewTokens: 8, policy: 'shadowkv+kivi:bits=2', onToken: (t: { id: number }) => { seen.push(t.id) } })).toThrow(PolicyCompositionError)
    expect(seen).toEqual([])
  })

  it('ShadowKV alone and KIVI alone still run on that prompt', async () => {
    for (const policy of ['shadowkv', 'kivi:bits=2']) expect((await model.generate(fixturePrompt(700), { maxNewTokens: 8, policy }).result).ids).toHaveLength(8)
  })
})
