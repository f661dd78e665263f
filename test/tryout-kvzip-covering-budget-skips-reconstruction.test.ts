import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LlamaModel } from '../src/model/model.js'
import { loadModel } from '../src/node/load.js'
import { createPolicy } from '../src/policies/registry.js'
import type { Policy, PolicyContext, PolicyRuntime } from '../src/policies/types.js'
import { fixturePrompt } from './threads-helpers.js'

// KVzip ran its context reconstruction (one more forward pass over the whole prompt) at prefill end even
// where its budget kept every token: kvzip:budget=1 on 1200 tokens spent 5.4 s in compressMs (2.5x the
// prefill) to evict nothing, where every other policy returns at once. The reconstruction now runs when
// the first head is scored, which a budget that covers the prompt never reaches.

/** the policy, counting the runtime's extend passes (the reconstruction) its sessions run */
function counting(policy: Policy): { policy: Policy; passes: () => number } {
  let passes = 0
  const wrapCtx = (ctx: PolicyContext): PolicyContext => {
    const rt = ctx.runtime!
    const runtime: PolicyRuntime = Object.assign(Object.create(rt) as PolicyRuntime, {
      extendAsync: (...a: Parameters<PolicyRuntime['extendAsync']>) => {
        passes++
        return rt.extendAsync(...a)
      },
    })
    return { ...ctx, runtime }
  }
  return {
    passes: () => passes,
    policy: {
      ...policy,
      start() {
        const s = policy.start()
        return { ...s, onPrefillEndAsync: (ctx: PolicyContext) => s.onPrefillEndAsync!(wrapCtx(ctx)) }
      },
    },
  }
}

describe('KVzip with a budget that covers the prompt', () => {
  let model: LlamaModel
  beforeAll(async () => {
    model = await loadModel('models/fixture-14m', { threads: 1, wasm: { relaxed: false } })
  })
  afterAll(() => model?.dispose())

  it.each(['kvzip:budget=1', 'kvzip:tokens=400', 'kvzip:budget=1,layerwise=true', 'kvzip:tokens=300,plus=true'])('%s runs no reconstruction and keeps the whole cache', async (spec) => {
    const { policy, passes } = counting(createPolicy(spec, model.config)!)
    const r = await model.generate(fixturePrompt(300), { maxNewTokens: 2, policy }).result
    expect(passes()).toBe(0)
    const full = await model.generate(fixturePrompt(300), { maxNewTokens: 2 }).result
    expect(r.stats.kvBytes.total).toBe(full.stats.kvBytes.total)
    expect(r.ids).toEqual(full.ids)
  })

  it.each(['kvzip:budget=0.5', 'kvzip:budget=0.5,layerwise=true'])('%s still reconstructs once and evicts', async (spec) => {
    const { policy, passes } = counting(createPolicy(spec, model.config)!)
    const r = await model.generate(fixturePrompt(300), { maxNewTokens: 2, policy }).result
    expect(passes()).toBeGreaterThan(0)
    const once = passes()
    const again = counting(createPolicy(spec, model.config)!)
    expect((await model.generate(fixturePrompt(300), { maxNewTokens: 2, policy: again.policy }).result).ids).toEqual(r.ids)
    expect(again.passes()).toBe(once)
    const full = await model.generate(fixturePrompt(300), { maxNewTokens: 2 }).result
    expect(r.stats.kvBytes.total).toBeLessThan(full.stats.kvBytes.total)
  })
})
