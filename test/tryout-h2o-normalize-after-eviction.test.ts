import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Decision } from '../src/cache/types.js'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { composePolicies } from '../src/policies/compose.js'
import { headMass } from '../src/policies/head-mass.js'
import { createPolicy } from '../src/policies/registry.js'
import { statelessPolicy } from '../src/policies/stateless.js'
import type { PolicyContext } from '../src/policies/types.js'
import { fixturePrompt } from './threads-helpers.js'

// H2O's normalize=true (kvpress's ObservedAttention) divides a token's prompt mass by the number of
// prompt queries that saw it. It counted them by slot (n - i), which holds only while slot i is
// prompt token i: after a part composed before it evicted tokens, a kept early token was divided by
// the few tokens kept after it instead of the c - p queries from its position p on, so it ranked far
// above its observed attention. The count is now by position; alone, the two agree.

const prompt = fixturePrompt(240)
const c = prompt.length - 1

describe('H2O normalize after an eviction', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['snapkv:budget=0.5', 'knorm:budget=0.5', 'h2o:budget=0.5'])('after %s, H2O keeps the top of mass(p) / (c - p) among the kept tokens', async (first) => {
    let mass: Float32Array[][] = []
    const spy = statelessPolicy({
      name: 'mass', needs: { prefillAttentionMass: true },
      onPrefillEnd: (ctx: PolicyContext) => {
        mass = ctx.hooks.map((h) => [0, 1].map((g) => headMass(h, 2, g, c)!.slice()))
        return null
      },
    })
    await model.generate(prompt, { maxNewTokens: 1, policy: spy }).result
    const decisions: Decision[] = []
    const recorder = statelessPolicy({ name: 'rec', needs: {}, onApplied: (d) => void decisions.push(d) })
    const h2o = createPolicy('h2o:budget=0.25,recent=0,normalize=true', model.config)!
    await model.generate(prompt, { maxNewTokens: 1, policy: composePolicies([createPolicy(first, model.config)!, h2o, recorder]) }).result
    const [evicted, chosen] = decisions
    let checked = 0
    for (const d of chosen.heads) {
      // the first part's keep lists are prompt positions (slot i is token i before it)
      const positions = evicted.heads.find((x) => x.layer === d.layer && x.head === d.head)!.keep
      const score = (p: number) => mass[d.layer][d.head][p] / (c - p)
      const ranked = Array.from(positions).sort((a, b) => score(b) - score(a) || a - b)
      const kept = Array.from(d.keep, (slot) => positions[slot]).sort((a, b) => a - b)
      expect(kept, `layer ${d.layer} head ${d.head}`).toEqual(ranked.slice(0, d.keep.length).sort((a, b) => a - b))
      checked++
    }
    expect(checked).toBe(model.config.layers * model.config.kvHeads)
  })
})
