/**
 * Kind 9 of issue 8: a composition `a+b` supports what its parts do, or refuses at creation.
 * - Every part hears every applied decision (its own and the other parts'), prefill and decode.
 * - A part's `selectTokens` is kept (it was dropped); two selecting parts are refused.
 * - Channel pruning beside any part that decides during decoding, or beside a pre-RoPE cache, is
 *   refused (PolicyCompositionError). Grid: every decoding spec of every registered policy + think.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadModel } from '../src/node/load.js'
import type { LlamaModel } from '../src/model/model.js'
import { PolicyCompositionError } from '../src/policies/errors.js'
import { composePolicies } from '../src/policies/compose.js'
import { createPolicy, getPolicyDefinition } from '../src/policies/registry.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { Decision } from '../src/cache/types.js'
import type { Policy, PolicyContext } from '../src/policies/types.js'
import { randomGatesFile, specsPerPolicy } from './policy-grid-helpers.js'
import { makeTinyModel } from './tiny-model.js'

let model: LlamaModel
beforeAll(async () => {
  model = await loadModel(makeTinyModel({ eos_token_id: null }), { backend: 'wasm' })
})
afterAll(() => model?.dispose())
const prompt = Array.from({ length: 20 }, (_, i) => 30 + i * 11)

/** keeps the newest `keep` tokens of every head, at prefill end or at decode step `at` */
function keepNewest(keep: number, at: number | 'prefill', heard: [string, Decision][], label: string): Policy {
  const decide = (ctx: PolicyContext): Decision => ({
    heads: Array.from({ length: ctx.model.layers * ctx.model.kvHeads }, (_, i) => {
      const layer = Math.floor(i / ctx.model.kvHeads), head = i % ctx.model.kvHeads
      const n = ctx.cache.length(layer, head)
      return { layer, head, keep: Int32Array.from({ length: Math.min(n, keep) }, (_, j) => n - Math.min(n, keep) + j) }
    }),
  })
  return statelessPolicy({
    name: label, needs: {}, traits: { decodes: at !== 'prefill' },
    onPrefillEnd: (ctx) => (at === 'prefill' ? decide(ctx) : null),
    onDecodeStep: (ctx) => (ctx.step === at ? decide(ctx) : null),
    onApplied: (d) => void heard.push([label, d]),
  })
}

describe('composition', () => {
  it('every part hears every applied decision, in order, prefill and decode', async () => {
    const heardA: [string, Decision][] = []
    const heardB: [string, Decision][] = []
    const a = keepNewest(8, 'prefill', heardA, 'a')
    const b = keepNewest(5, 2, heardB, 'b')
    const r = await model.generate(prompt, { maxNewTokens: 4, policy: composePolicies([a, b]) }).result
    expect(r.ids).toHaveLength(4)
    for (const heard of [heardA, heardB]) {
      expect(heard.length).toBe(2)
      // the prefill decision keeps 8 of 19, the decode decision 5 of the 10 held at step 2
      expect(heard[0][1].heads[0].keep.length).toBe(8)
      expect(heard[1][1].heads[0].keep.length).toBe(5)
    }
    expect(heardA.map((x) => x[1])).toEqual(heardB.map((x) => x[1]))
  })

  it('a part\'s selectTokens is kept; two selecting parts are refused', async () => {
    let calls = 0
    const selector = statelessPolicy({ name: 'sel', needs: {}, selectTokens: () => (calls++, null) })
    const composed = composePolicies([createPolicy('knorm:tokens=8', model.config)!, selector])
    expect(composed.start().selectTokens).toBeTypeOf('function')
    await model.generate(prompt, { maxNewTokens: 3, policy: composed }).result
    expect(calls).toBe(3 * model.config.layers)
    expect(() => composePolicies([selector, statelessPolicy({ name: 'sel2', needs: {}, selectTokens: () => null })])).toThrow(PolicyCompositionError)
  })

  it('every decoding spec of every policy + think is refused; prefill-only ones and quantizers compose', () => {
    const specs = [...specsPerPolicy(randomGatesFile(model.config)).values()].flat().filter((s) => !s.startsWith('think'))
    let refused = 0
    for (const spec of specs) {
      const part = createPolicy(spec, model.config)!
      const compose = () => createPolicy(`${spec}+think:window=4`, model.config)
      // a quantizer's decode steps pack rows without scoring keys: it composes with channel pruning,
      // unless it packs whole key rows only (VidKV's spectral keys) or is an eviction holding its own
      // quantizer (UnionKV with bits), which stage order runs before ThinK: its rows are packed by then
      const packsFirst = part.traits?.quantizes && getPolicyDefinition(spec.split(':')[0]).stage !== 'quantization'
      if ((part.traits?.decodes && !part.traits?.quantizes) || part.needs.cacheKeys === 'pre-rope' || part.traits?.packsWholeKeys || packsFirst) {
        expect(compose, spec).toThrow(PolicyCompositionError)
        refused++
      } else {
        expect(compose(), spec).not.toBeNull()
      }
    }
    // the every=N variants, keyformer (every step), trimkv (every N) and tova:every=1
    expect(refused).toBeGreaterThanOrEqual(12)
  })

  it('h2o:every=1+snapkv runs with H2O following the cache snapkv compressed', async () => {
    const r = await model.generate(prompt, { maxNewTokens: 4, policy: createPolicy('snapkv:tokens=6,window=4+h2o:every=1,tokens=8', model.config)! }).result
    expect(r.ids).toHaveLength(4)
    // snapkv keeps 6 at prefill; each decode token adds one until h2o holds 8, then h2o keeps 8
    expect(r.stats.kvBytes.hot).toBe(8 * model.config.layers * model.config.kvHeads * 2 * model.config.headDim * 4)
  })
})
