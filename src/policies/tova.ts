/**
 * TOVA (Oren et al. 2024, "Transformers are Multi-State RNNs"): keep the tokens the last query attends
 * to most, its attention averaged over all heads of the layer, so one selection serves every head.
 * At prefill end the last query is the prompt's last one; with `every=N`, the current decode query.
 * The newest token is always kept (as in kvpress). Scores are per token, whatever its slot, so a decode
 * step that drops a token does it order-free (`Decision.evictions`).
 */
import { budgetFrom, budgetOptions } from './budget.js'
import { compensateOption, evictionPolicy } from './evict.js'
import { observationFromHooks, queryAttention } from './observe.js'
import type { PolicyDefinition } from './registry.js'

export const tova: PolicyDefinition = {
  name: 'tova',
  description: 'TOVA: keep the tokens the last query attends to, averaged over the heads of a layer',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption],
  create(o, model) {
    return evictionPolicy(() => ({
      name: 'tova', orderFree: true, budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, needs: { observationWindow: 1, decodeQueries: (o.every as number) > 0 },
      traits: { sharedSlots: !o.compensate, readsPrompt: 'shared-slots' },
      score(ctx, layer, phase) {
        const q = phase === 'prefill' ? observationFromHooks(ctx, layer, 1).queries : ctx.hooks[layer]?.decodeQuery
        if (!q) throw new Error(`tova: layer ${layer} has no decode query`)
        const perHead = queryAttention(ctx, layer, q)
        const n = perHead[0].length
        // heads hold the same slots (TOVA's keep lists are shared), so their scores average slot by slot
        if (perHead.some((s) => s.length !== n)) throw new Error(`tova: layer ${layer} heads hold different token counts; TOVA shares one selection per layer`)
        const mean = new Float32Array(n)
        for (const s of perHead) for (let i = 0; i < n; i++) mean[i] += s[i] / model.qHeads
        // the newest token stays: the one with the highest position, wherever order-free eviction put its slot
        const pos = ctx.cache.positions(layer, 0)
        let newest = 0
        for (let i = 1; i < n; i++) if (pos[i] > pos[newest]) newest = i
        mean[newest] = Infinity
        return perHead.map(() => mean.slice())
      },
    }))
  },
}
