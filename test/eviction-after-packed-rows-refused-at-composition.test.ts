import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy, PolicyCompositionError } from '../src/policies/registry.js'
import { composePolicies } from '../src/policies/compose.js'
import { createKivi } from '../src/policies/kivi.js'
import { fixturePrompt } from './threads-helpers.js'

// UnionKV with bits holds its own KIVI part, so a spec's stage order (quantizers last) leaves an eviction
// or ThinK written after it running on packed rows: the store refused the eviction after the prefill (a
// CacheError: "slot 1 ... is packed and cannot be evicted"), SnapKV failed reading a two-segment head,
// ThinK threw a plain Error ("already channel-pruned"). Each is a PolicyCompositionError at creation
// naming both parts; an eviction keeping shared slots written first, or a decode-time selector after, runs.

describe('a part that evicts or prunes after a part that packed the rows', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['h2o:budget=0.5', 'snapkv:budget=0.5', 'streamingllm:budget=0.5', 'lagkv:budget=0.5'])('unionkv:bits=4 then %s: refused at creation, naming both', (then) => {
    const name = then.split(':')[0]
    const seen: number[] = []
    const go = () => model.generate(fixturePrompt(300), { maxNewTokens: 2, kvDtype: 'float16', policy: `unionkv:bits=4+${then}`, onToken: (t: { id: number }) => void seen.push(t.id) })
    expect(go).toThrow(PolicyCompositionError)
    expect(go).toThrow(`${name} evicts after unionkv:bits=4 packed the rows, which cannot be evicted; `)
    expect(seen).toEqual([])
  })

  it('the advice is to put the eviction first only where that composes (StreamingLLM keeps shared slots; SnapKV leaves each head its own, which UnionKV cannot read)', () => {
    expect(() => createPolicy('unionkv:bits=4+streamingllm:budget=0.5', model.config)).toThrow('; put streamingllm before unionkv:bits=4')
    expect(() => createPolicy('unionkv:bits=4+snapkv:budget=0.5', model.config)).toThrow('; nor can snapkv run before it (unionkv:bits=4 needs every KV head of a layer to hold the same tokens, and snapkv leaves each head its own)')
  })

  it.each(['unionkv:bits=4+think', 'think+unionkv:bits=2'])('%s: refused at creation (ThinK prunes after the packing in stage order)', (spec) => {
    expect(() => createPolicy(spec, model.config)).toThrow(PolicyCompositionError)
    expect(() => createPolicy(spec, model.config)).toThrow(`think prunes key channels after unionkv:bits=${/bits=(\d)/.exec(spec)![1]} packed the rows`)
  })

  it('a KIVI part composed before an eviction by hand is refused too', () => {
    const h2o = createPolicy('h2o:budget=0.5', model.config)!
    expect(() => composePolicies([createKivi({ bits: 4 }), h2o])).toThrow('h2o evicts after kivi packed the rows')
  })

  it.each(['streamingllm:budget=0.5+unionkv:bits=4', 'unionkv:bits=4+quest', 'h2o:budget=0.5+kivi'])('%s runs', async (spec) => {
    expect((await model.generate(fixturePrompt(300), { maxNewTokens: 2, kvDtype: 'float16', policy: spec }).result).ids).toHaveLength(2)
  })
})
