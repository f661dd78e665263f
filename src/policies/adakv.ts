/**
 * AdaKV (Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation").
 * Over SnapKV's scores: the KV heads of a layer share one budget (heads x C); each head is guaranteed
 * floor(alpha x C) of its own top tokens, the rest go to the top scores across the layer's heads, so a
 * head with concentrated attention hands budget to one with spread attention. The per-head keep lists
 * have different lengths and the cache stores them ragged (kvpress only masks: it frees nothing).
 */
import { budgetFrom, budgetOptions, keepAdaptive } from './budget.js'
import { compensateOption, evictionPolicy } from './evict.js'
import { checkObservationOptions, observationOptions } from './observe.js'
import type { PolicyDefinition } from './registry.js'
import { sinkOption, snapScorer } from './snapkv.js'

function unflatten<T>(xs: T[], heads: number): T[][] {
  return Array.from({ length: xs.length / heads }, (_, l) => xs.slice(l * heads, (l + 1) * heads))
}

export const adakv: PolicyDefinition = {
  name: 'adakv',
  description: 'AdaKV: SnapKV scores, one budget per layer shared across heads by score, each head keeping at least alpha of its even share',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption, ...observationOptions, sinkOption,
    { name: 'alpha', type: 'number', default: 0.2, min: 0, max: 1, description: 'floor of each head, as a share of the even per-head budget' },
    { name: 'scope', type: 'string', default: 'layer', choices: ['layer', 'model'], description: 'share the budget among the heads of each layer (paper) or among all heads of all layers' }],
  check: checkObservationOptions,
  create(o, model) {
    const alpha = o.alpha as number
    return evictionPolicy(() => ({
      name: 'adakv', budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, ...snapScorer(o, model),
      ...(o.scope === 'model'
        // every (layer, head) in one pool: layers whose heads attend narrowly give budget to the others
        ? { keepModel: (ctx, scores, perHead) => unflatten(keepAdaptive(ctx.ops, scores.flat(), perHead * scores.flat().length, alpha), model.kvHeads) }
        : { keep: (ctx, scores, perHead) => keepAdaptive(ctx.ops, scores, perHead * scores.length, alpha) }),
    }))
  },
}
