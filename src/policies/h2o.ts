/**
 * H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of LLMs").
 * Heavy-hitter score = attention probability accumulated over every query so far: all prompt queries
 * (the runtime's attention-mass hook, summed over each KV head's query group), then each decode query.
 * Keep the top heavy hitters plus the most recent tokens (by default half of the budget each; the
 * paper's 10% + 10% is `budget=0.2`). With `every=N` the cache is brought back to the budget every N
 * steps (the paper evicts at every step: `every=1`).
 * `normalize=true` divides a token's prompt mass by the number of prompt queries that could see it,
 * as kvpress's ObservedAttention does; with `recent=0` that is ObservedAttention.
 * The scores are kept by token position, so a step that evicts a token or two does it order-free, O(1)
 * row moves however long the cache (`Decision.evictions`). A compensation token (`compensate=true`) is
 * labelled with the mean position of what it replaces and shares that position's score.
 */
import { budgetFrom, budgetOptions, tokensPerHead } from './budget.js'
import { compensateOption, evictionPolicy, protectRecent } from './evict.js'
import { headMass } from './head-mass.js'
import { queryAttention } from './observe.js'
import type { PolicyDefinition } from './registry.js'
import type { PolicyContext } from './types.js'

export const h2o: PolicyDefinition = {
  name: 'h2o',
  description: 'H2O: heavy hitters by attention accumulated over all queries, plus a recent window',
  stage: 'eviction',
  options: [...budgetOptions, compensateOption,
    { name: 'recent', type: 'number', default: 0.5, min: 0, max: 1, description: 'share of the budget given to the most recent tokens' },
    { name: 'normalize', type: 'boolean', default: false, description: 'divide prompt mass by the number of queries that saw each token (kvpress ObservedAttention)' }],
  create(o, model) {
    const budget = budgetFrom(o)
    const every = o.every as number
    return evictionPolicy(() => {
      // accumulated attention per (layer, head), indexed by token position: slots may change order under
      // order-free eviction, positions never do
      let mass: Float32Array[][] = []
      // tokens in the cache at prefill end: the budget counts from them (as evictionPolicy does)
      let prefilled = 0

      function fromPrefill(ctx: PolicyContext): void {
        prefilled = Math.max(1, ctx.cache.length(0, 0))
        mass = ctx.hooks.map((hook, layer) => {
          return Array.from({ length: model.kvHeads }, (_, h) => {
            const n = ctx.cache.length(layer, h)
            const m = headMass(hook, model.kvHeads, h, n)
            if (!m) throw new Error(`h2o: layer ${layer} head ${h} has no attention mass for its ${n} tokens (needs.prefillAttentionMass)`)
            const pos = ctx.cache.positions(layer, h)
            let newest = 0
            for (let i = 0; i < n; i++) if (pos[i] > newest) newest = pos[i]
            const acc = room(new Float32Array(0), newest)
            // the token at position p is seen by the c - p prompt queries from p on (kvpress's normalization):
            // by position, since a part composed before this one may have evicted tokens, where slot i's
            // n - i counted the tokens kept after it instead. c: the prefilled tokens, all but the prompt's
            // last (generate's protocol), and at least the newest position + 1 (a context whose cache
            // holds the whole prompt)
            const c = Math.max(ctx.promptLength - 1, newest + 1)
            for (let i = 0; i < n; i++) acc[pos[i]] = o.normalize ? m[i] / (c - pos[i]) : m[i]
            return acc
          })
        })
      }

      return {
        name: 'h2o', budget, every, compensate: o.compensate as boolean, needs: { prefillAttentionMass: true, decodeQueries: every > 0 },
        orderFree: true,
        prefill: fromPrefill,
        score(ctx, layer) {
          const recent = Math.floor((o.recent as number) * tokensPerHead(budget, prefilled))
          return mass[layer].map((m, h) => {
            const pos = ctx.cache.positions(layer, h)
            const s = new Float32Array(pos.length)
            for (let i = 0; i < pos.length; i++) s[i] = pos[i] < m.length ? m[pos[i]] : 0
            return protectRecent(ctx.ops, s, pos, recent)
          })
        },
        step(ctx) {
          if (every === 0) return
          for (let layer = 0; layer < model.layers; layer++) {
            const q = ctx.hooks[layer]?.decodeQuery
            if (!q) throw new Error(`h2o: layer ${layer} has no decode query (needs.decodeQueries)`)
            queryAttention(ctx, layer, q).forEach((p, h) => {
              const pos = ctx.cache.positions(layer, h)
              let newest = 0
              for (let i = 0; i < pos.length; i++) if (pos[i] > newest) newest = pos[i]
              const acc = (mass[layer][h] = room(mass[layer][h], newest))
              for (let i = 0; i < p.length; i++) acc[pos[i]] += p[i]
            })
          }
        },
      }
    })
  },
}

/** `acc` with room for index `p` (grown by doubling, new entries 0) */
function room(acc: Float32Array, p: number): Float32Array {
  if (p < acc.length) return acc
  const grown = new Float32Array(Math.max(p + 1, 2 * acc.length, 64))
  grown.set(acc)
  return grown
}
