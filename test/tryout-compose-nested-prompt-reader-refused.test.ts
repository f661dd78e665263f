/**
 * A composition holding a part that reads the prompt as prefilled (KVzip, TOVA, ...) says so whichever
 * of its parts that is (traits.readsPrompt): it took its first part's only, so quest+kvzip composed after
 * SnapKV was accepted and failed after the prefill with a CacheError (KVzip's slots past a head's end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { composePolicies } from '../src/policies/compose.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import type { Policy } from '../src/policies/types.js'
import { fixturePrompt } from './threads-helpers.js'

describe('a nested composition holding a prompt reader', () => {
  let model: LlamaModel
  const make = (spec: string) => createPolicy(spec, model.config) as Policy
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each([
    ['quest:budget=0.5', 'kvzip:budget=0.5', 'whole'],
    ['streamingllm:budget=0.5', 'tova:budget=0.5', 'shared-slots'],
  ])('%s+%s: readsPrompt %s, refused after SnapKV', (a, b, reads) => {
    const inner = composePolicies([make(a), make(b)])
    expect(inner.traits?.readsPrompt).toBe(reads)
    expect(() => composePolicies([make('snapkv:budget=0.5'), inner])).toThrow(PolicyCompositionError)
    expect(() => composePolicies([make('snapkv:budget=0.5'), inner])).toThrow('snapkv')
  })

  it('first, it runs', async () => {
    const inner = composePolicies([make('quest:budget=0.5'), make('kvzip:budget=0.5')])
    const r = await model.generate(fixturePrompt(200), { maxNewTokens: 4, policy: composePolicies([inner, make('snapkv:budget=0.5')]) }).result
    expect(r.ids).toHaveLength(4)
  })
})
