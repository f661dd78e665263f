/**
 * AdaKV (Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation").
 * Over SnapKV's scores: the KV heads of a layer share one budget (heads x C); each head is guaranteed
 * floor(alpha x C) of its own top tokens, the rest go to the top scores across the layer's heads, so a
 * head with concentrated attention hands budget to one with spread attention. The per-head keep lists
 * have different lengths and the cache stores them ragged (kvpress only masks: it frees nothing).
 */
import { budgetFrom, budgetOptions, keepAdaptive } from './budget.js'
import { evictionPolicy } from './evict.js'
import { observationOptions } from './observe.js'
import type { PolicyDefinition } from './registry.js'
import { sinkOption, snapScorer } from './snapkv.js'

export const adakv: PolicyDefinition = {
  name: 'adakv',
  description: 'AdaKV: SnapKV scores, one budget per layer shared across heads by score, each head keeping at least alpha of its even share',
  stage: 'eviction',
  options: [...budgetOptions, ...observationOptions, sinkOption,
    { name: 'alpha', type: 'number', default: 0.2, min: 0, max: 1, description: 'floor of each head, as a share of the even per-head budget' }],
  create(o, model) {
    return evictionPolicy({
      name: 'adakv', budget: budgetFrom(o), every: o.every as number, ...snapScorer(o, model),
      keep: (ctx, scores, perHead) => keepAdaptive(ctx.ops, scores, perHead * scores.length, o.alpha as number),
    })
  },
}
