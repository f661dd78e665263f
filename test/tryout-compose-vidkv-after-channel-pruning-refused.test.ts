import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { fixturePrompt } from './threads-helpers.js'

// VidKV packs keys as int2 channels plus the signs of a spectrum over the other channels, so it takes
// whole key rows only. Composed after ThinK (which prunes key channels), the store refused its first
// decision after the prefill with a CacheError ("int2+sign keys take whole key rows; (layer 0, head 0)
// has channel-pruned rows"). It is a PolicyCompositionError at creation; KIVI and MiKV, which pack a
// pruned prefix with its own channels, still compose after ThinK.

describe('VidKV after channel pruning', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['think+vidkv', 'think:ratio=0.1+vidkv:residual=0,keyBits=2', 'snapkv:budget=0.25+think+vidkv:residual=32', 'vidkv+think'])('%s: refused at creation naming both', (spec) => {
    expect(() => createPolicy(spec, model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy(spec, model.config)).toThrow('think prunes key channels, and vidkv packs whole key rows only')
  })

  it('the generate call throws it before streaming a token', () => {
    const seen: number[] = []
    expect(() => model.generate(fixturePrompt(330), { maxNewTokens: 4, policy: 'think+vidkv:residual=0', onToken: (t: { id: number }) => void seen.push(t.id) })).toThrow(PolicyCompositionError)
    expect(seen).toEqual([])
  })

  it.each(['think+kivi:bits=4,residual=0', 'think+mikv:residual=0', 'snapkv:budget=0.5+vidkv:residual=0'])('%s packs on a 330-token prompt', async (policy) => {
    const r = await model.generate(fixturePrompt(330), { maxNewTokens: 4, policy }).result
    expect(r.ids).toHaveLength(4)
    expect(r.stats.kvBytes.quantized).toBeGreaterThan(0)
  })
})
