/**
 * StreamingLLM (Xiao et al. 2024, "Efficient Streaming Language Models with Attention Sinks"):
 * keep the first `sinks` tokens (the attention sinks) and the most recent C - sinks tokens.
 * The paper stores keys before RoPE and rotates them by their place in the cache, which is what lets it
 * run past the trained length: `rerotate=true` asks the runtime for such a cache. Off by default, as in
 * kvpress, which keeps true positions.
 */
import { budgetFrom, budgetOptions } from './budget.js'
import { compensateOption, evictionPolicy, protect } from './evict.js'
import type { PolicyDefinition } from './registry.js'

export const streamingllm: PolicyDefinition = {
  name: 'streamingllm',
  description: 'StreamingLLM: attention sinks (first tokens) plus the most recent tokens',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption, { name: 'sinks', type: 'integer', default: 4, min: 0, description: 'first tokens always kept' },
    { name: 'rerotate', type: 'boolean', default: false, description: 'store keys before RoPE and rotate them by their place in the cache (the paper: runs past the trained length)' }],
  create(o, model) {
    const sinks = o.sinks as number
    return evictionPolicy(() => ({
      name: 'streamingllm', budget: budgetFrom(o), every: o.every as number, compensate: o.compensate as boolean,
      // by position: heads holding the same tokens keep the same ones (a compensation row is each head's own)
      traits: { sharedSlots: !o.compensate },
      needs: o.rerotate ? { cacheKeys: 'pre-rope' } : {},
      // re-rotated keys take their rotation from their slot, so only a cache of true positions may reorder slots
      orderFree: !o.rerotate,
      // recency is the score: later positions rank higher; the sinks (the first slots, which hole filling
      // never moves) rank highest
      score: (ctx, layer) => Array.from({ length: model.kvHeads }, (_, h) => protect(Float32Array.from(ctx.cache.positions(layer, h)), sinks, 0)),
    }))
  },
}
