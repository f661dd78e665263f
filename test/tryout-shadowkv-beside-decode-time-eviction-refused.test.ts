import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { fixturePrompt } from './threads-helpers.js'

// ShadowKV factors the prompt's keys at prefill end and keys its state by slot, with the prompt's pages
// in the host tier. A part that evicts during decoding (every=N, Keyformer, TRIM-KV's every) used to be
// accepted beside it: SnapKV's every=4 then failed at its first decode-time decision with a CacheError
// from inside the store ("KVCache.view: ... use segments()"), TRIM-KV after 127 streamed tokens with
// ShadowKV's own PolicyCompositionError. The README says such a decision is a PolicyCompositionError;
// it is now one at creation, before any work.

const GATES = 'models/fixture-14m-trimkv/gates-M512.safetensors'

describe('ShadowKV beside a part that evicts during decoding', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['snapkv:budget=0.5,every=4+shadowkv:tokens=128', 'h2o:every=2+shadowkv', 'keyformer+shadowkv', `trimkv:gatesFile=${GATES}+shadowkv`, 'shadowkv+lagkv:every=8'])(
    '%s is a PolicyCompositionError at creation', (spec) => {
      expect(() => createPolicy(spec, model.config)).toThrow(PolicyCompositionError)
      expect(() => createPolicy(spec, model.config)).toThrow(/decides during decoding.*shadowkv|shadowkv.*decides during decoding/)
    })

  it('the generate call throws it, before streaming a token', () => {
    const seen: number[] = []
    expect(() => model.generate(fixturePrompt(700), { maxNewTokens: 8, policy: 'snapkv:budget=0.5,every=4+shadowkv:tokens=128', onToken: (t: { id: number }) => { seen.push(t.id) } })).toThrow(PolicyCompositionError)
    expect(seen).toEqual([])
  })

  it('prefill-time eviction before ShadowKV still runs', async () => {
    const r = await model.generate(fixturePrompt(700), { maxNewTokens: 8, policy: 'snapkv:budget=0.5+shadowkv:tokens=64' }).result
    expect(r.ids).toHaveLength(8)
  })
})
