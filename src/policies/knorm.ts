/**
 * Knorm (Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression"):
 * keys with a small L2 norm draw high attention, so keep the tokens whose keys have the smallest norm.
 * (RoPE rotates pairs of channels, so the norm is the same before and after it.) A key's score is its own,
 * whatever its slot, so a decode step that drops a few tokens does it order-free (`Decision.evictions`).
 */
import { budgetFrom, budgetOptions } from './budget.js'
import { compensateOption, evictionPolicy } from './evict.js'
import type { PolicyDefinition } from './registry.js'
import type { PolicyContext } from './types.js'

function negativeKeyNorms(ctx: PolicyContext, layer: number, head: number): Float32Array {
  const n = ctx.cache.length(layer, head)
  const keys = ctx.cache.readKeys(layer, head)
  const d = n ? keys.length / n : 0
  const score = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    let s = 0
    for (let c = 0; c < d; c++) s += keys[i * d + c] * keys[i * d + c]
    score[i] = -Math.sqrt(s)
  }
  return score
}

export const knorm: PolicyDefinition = {
  name: 'knorm',
  description: 'Knorm: keep the tokens whose keys have the smallest L2 norm',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption],
  create(o, model) {
    return evictionPolicy(() => ({
      name: 'knorm', orderFree: true, budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean, needs: {},
      score: (ctx, layer) => Array.from({ length: model.kvHeads }, (_, h) => negativeKeyNorms(ctx, layer, h)),
    }))
  },
}
