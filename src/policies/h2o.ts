/**
 * H2O (Zhang et al. 2023, "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of LLMs").
 * Heavy-hitter score = attention probability accumulated over every query so far: all prompt queries
 * (the runtime's attention-mass hook, summed over each KV head's query group), then each decode query.
 * Keep the top heavy hitters plus the most recent tokens (by default half of the budget each; the
 * paper's 10% + 10% is `budget=0.2`). With `every=N` the cache is brought back to the budget every N
 * steps (the paper evicts at every step: `every=1`).
 * `normalize=true` divides a token's prompt mass by the number of prompt queries that could see it,
 * as kvpress's ObservedAttention does; with `recent=0` that is ObservedAttention.
 */
import { budgetFrom, budgetOptions, tokensPerHead } from './budget.js'
import { compensateOption, evictionPolicy, protect } from './evict.js'
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
      // accumulated attention per (layer, head), slot by slot: remapped after every applied decision
      let mass: Float32Array[][] = []
      // tokens in the cache at prefill end: the budget counts from them (as evictionPolicy does)
      let prefilled = 0

      function fromPrefill(ctx: PolicyContext): void {
        prefilled = Math.max(1, ctx.cache.length(0, 0))
        mass = ctx.hooks.map((hook, layer) => {
          const m = hook?.attentionMass
          if (!m) throw new Error(`h2o: layer ${layer} has no attention mass (needs.prefillAttentionMass)`)
          return Array.from({ length: model.kvHeads }, (_, h) => {
            const n = ctx.cache.length(layer, h)
            if (m.length < model.kvHeads * n) throw new Error(`h2o: layer ${layer} attention mass holds ${m.length} floats, expected ${model.kvHeads} x ${n}`)
            const acc = m.slice(h * n, (h + 1) * n)
            if (o.normalize) for (let i = 0; i < n; i++) acc[i] /= n - i
            return acc
          })
        })
      }

      return {
        name: 'h2o', budget, every, compensate: o.compensate as boolean, needs: { prefillAttentionMass: true, decodeQueries: every > 0 },
        prefill: fromPrefill,
        score(_ctx, layer) {
          const recent = Math.floor((o.recent as number) * tokensPerHead(budget, prefilled))
          return mass[layer].map((m) => protect(m.slice(), 0, recent))
        },
        applied(decision) {
          // any decision (this policy's or another part's): kept slots keep their mass, added tokens start at 0
          for (const d of decision.heads) {
            const m = mass[d.layer]?.[d.head]
            if (!m) continue
            const next = new Float32Array(d.keep.length + (d.extra?.length ?? 0))
            d.keep.forEach((i, j) => (next[j] = m[i] ?? 0))
            mass[d.layer][d.head] = next
          }
        },
        step(ctx) {
          if (every === 0) return
          for (let layer = 0; layer < model.layers; layer++) {
            const q = ctx.hooks[layer]?.decodeQuery
            if (!q) throw new Error(`h2o: layer ${layer} has no decode query (needs.decodeQueries)`)
            queryAttention(ctx, layer, q).forEach((p, h) => {
              const old = mass[layer][h]
              const acc = new Float32Array(p.length)
              acc.set(old.subarray(0, Math.min(old.length, p.length)))
              for (let i = 0; i < p.length; i++) acc[i] += p[i]
              mass[layer][h] = acc
            })
          }
        },
      }
    })
  },
}
