import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Decision } from '../src/cache/types.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { composePolicies } from '../src/policies/compose.js'
import { headMass, remapMass } from '../src/policies/head-mass.js'
import { createPolicy } from '../src/policies/registry.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { Policy, PolicyContext } from '../src/policies/types.js'
import { fixturePrompt } from './threads-helpers.js'

// A part reading the prefill's attention mass (MiKV, H2O) composed after an
// eviction that leaves the KV heads of a layer different counts (AdaKV, CriticalAdaKV, KVzip,
// RazorAttention's retrieval heads) or merges tokens (KVMerger) failed mid-generation, after the prefill,
// with a plain Error ("mikv: layer 0 has no attention mass for its 154 tokens"): the composition dropped
// the mass whenever the heads' counts differed. It now follows each head's keep list and merges.

const prompt = fixturePrompt(300)

describe('attention mass through a composed decision', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each([
    ...['adakv:budget=0.5', 'criticaladakv:budget=0.5', 'kvzip:budget=0.5', 'kvmerger:budget=0.5', 'razorattention:budget=0.5,heads=0.0'].flatMap((first) =>
      // UnionKV is refused after them (its union reads slot i as one token in every head: test/unionkv-after-per-head-eviction-refused)
      ['mikv:residual=0', 'h2o:budget=0.5'].map((then) => [first, then])),
  ])('%s then %s generates', async (first, then) => {
    const r = await model.generate(prompt, { maxNewTokens: 4, policy: `${first}+${then}` }).result
    expect(r.ids).toHaveLength(4)
  })

  // what the second part reads, against the mass it would read alone at the slots the first part kept
  function spy(seen: { mass: (Float32Array | null)[][]; decision: Decision | null }): Policy {
    return statelessPolicy({
      name: 'spy',
      needs: { prefillAttentionMass: true },
      onApplied: (d) => void (seen.decision ??= d),
      onPrefillEnd: (ctx: PolicyContext) => {
        seen.mass = ctx.hooks.map((h, l) => Array.from({ length: ctx.model.kvHeads }, (_, g) => headMass(h, ctx.model.kvHeads, g, ctx.cache.length(l, g))?.slice() ?? null))
        return null
      },
    })
  }

  it.each(['adakv:budget=0.5', 'kvmerger:budget=0.5'])('after %s each head reads its kept slots\' own mass, a pivot adding its merged members\'', async (first) => {
    const alone = { mass: [] as (Float32Array | null)[][], decision: null as Decision | null }
    await model.generate(prompt, { maxNewTokens: 1, policy: spy(alone) }).result
    const composed = { mass: [] as (Float32Array | null)[][], decision: null as Decision | null }
    await model.generate(prompt, { maxNewTokens: 1, policy: composePolicies([createPolicy(first, model.config)!, spy(composed)]) }).result
    const d = composed.decision!
    // the cases the composition used to drop: heads of a layer keeping different counts, or merges
    if (first.startsWith('kvmerger')) expect(d.heads.some((h) => h.merges?.length)).toBe(true)
    else expect(new Set(d.heads.filter((h) => h.layer === 0).map((h) => h.keep.length)).size).toBeGreaterThan(1)
    for (const h of d.heads) {
      const full = alone.mass[h.layer][h.head]!
      const want = Float32Array.from(h.keep, (s) => full[s])
      for (const m of h.merges ?? []) {
        const j = h.keep.indexOf(m.pivot)
        for (const s of new Set(m.members)) if (s !== m.pivot && !h.keep.includes(s)) want[j] += full[s]
      }
      expect(composed.mass[h.layer][h.head], `layer ${h.layer} head ${h.head}`).toEqual(want)
    }
  })
})

describe('remapMass by hand', () => {
  // two KV heads over 4 slots: head 0 keeps 1 and 3; head 1 keeps 0, 2, 3 and merges 1 into 2; an added row
  const mass = Float32Array.from([1, 2, 3, 4, 10, 20, 30, 40])
  const d: Decision = {
    heads: [
      { layer: 0, head: 0, keep: Int32Array.from([1, 3]) },
      { layer: 0, head: 1, keep: Int32Array.from([0, 2, 3]), merges: [{ pivot: 2, members: Int32Array.from([1, 2]), weights: Float32Array.from([1, 1]) }], extra: [{ key: new Float32Array(2), value: new Float32Array(2), position: 9 }] },
    ],
  }

  it('heads of different counts: the longest sets the stride, the others end in zeros', () => {
    const out = remapMass(mass, d, 0, 2, () => 4)!
    expect(Array.from(out)).toEqual([2, 4, 0, 0, 10, 50, 40, 0])
    expect(Array.from(headMass({ layer: 0, attentionMass: out }, 2, 0, 2)!)).toEqual([2, 4])
    expect(Array.from(headMass({ layer: 0, attentionMass: out }, 2, 1, 4)!)).toEqual([10, 50, 40, 0])
    // a head longer than the stride has no mass to read, rather than its neighbour's
    expect(headMass({ layer: 0, attentionMass: out }, 2, 0, 5)).toBeNull()
  })

  it('a layer the decision does not name keeps its mass; counts past the mass cannot follow', () => {
    expect(Array.from(remapMass(mass, d, 1, 2, () => 4)!)).toEqual(Array.from(mass))
    expect(remapMass(mass, d, 0, 2, () => 5)).toBeNull()
  })
})
