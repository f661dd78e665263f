/**
 * DELTA (dynamic layer-aware token attention): layers in three roles. The first `full` layers attend
 * densely; the Δ layers (`full`, `full + interval`, ...) attend densely too and score pages of `page`
 * tokens from their own attention probabilities, score_p = sum_{i in p} max_h P[h, i]; every other layer
 * attends only to the last Δ layer's selection: its top pages plus the last `recent` pages (8), `tokens`
 * in all. The whole cache stays; only attention shrinks.
 *
 * The selection is by slot and shared across layers, so the layers must hold the same slots: after an
 * eviction that left layers or heads different slots, the sparse layers attend densely.
 */
import type { PolicyDefinition } from './registry.js'
import { scoreHeadKeys } from './segment-scores.js'
import { headsAligned, pageSlots, selectionBudget, selectionBudgetOptions, selectionPolicy, subBuf, type Selection } from './selection.js'
import { topKIndices } from './budget.js'
import type { PolicyContext } from './types.js'

/** per page of `page` slots: the sum over its tokens of the max over every query head of P[h, i] */
export function deltaPageScores(ctx: PolicyContext, layer: number, query: Float32Array, page: number): Float32Array {
  const { kvHeads, group, headDim: d } = ctx.model
  const n = ctx.cache.length(layer, 0)
  const heap = ctx.ops.heap
  const q = heap.f32From(query)
  const p = heap.allocF32(group * n)
  try {
    const best = new Float32Array(n)
    for (let g = 0; g < kvHeads; g++) {
      scoreHeadKeys(ctx, layer, g, subBuf(q, g * group * d, group * d), group, 1 / Math.sqrt(d), p, { float16: true })
      ctx.ops.softmaxRows(p, group, n)
      const P = p.view
      for (let h = 0; h < group; h++) for (let i = 0; i < n; i++) if (P[h * n + i] > best[i]) best[i] = P[h * n + i]
    }
    const score = new Float32Array(Math.ceil(n / page))
    for (let i = 0; i < n; i++) score[Math.floor(i / page)] += best[i]
    return score
  } finally {
    p.free()
    q.free()
  }
}

export const delta: PolicyDefinition = {
  name: 'delta',
  description: 'DELTA: full layers, Δ layers that score pages from their attention, sparse layers that attend to the last Δ selection',
  stage: 'selection',
  options: [
    ...selectionBudgetOptions,
    { name: 'page', type: 'integer', default: 16, min: 1, description: 'tokens per page (16)' },
    { name: 'full', type: 'integer', default: 2, min: 0, description: 'first layers that attend densely' },
    { name: 'interval', type: 'integer', default: 3, min: 1, description: 'a Δ layer every `interval` layers from layer `full` on' },
    { name: 'recent', type: 'integer', default: 8, min: 0, description: 'last pages always attended (8)' },
  ],
  create(o) {
    const page = o.page as number
    const full = o.full as number
    const interval = o.interval as number
    const recent = o.recent as number
    return selectionPolicy({
      name: 'delta',
      selector() {
        let aligned = true
        let chosen: { n: number; slots: Int32Array } | null = null
        return {
          onApplied(d, ctx) {
            aligned = aligned && headsAligned(d, ctx.model.kvHeads) && new Set(Array.from({ length: ctx.model.layers }, (_, l) => ctx.cache.length(l, 0))).size === 1
            chosen = null
          },
          select(ctx, layer, query): Selection | null {
            if (layer < full || !aligned) return null
            const n = ctx.cache.length(layer, 0)
            const B = selectionBudget(o, ctx.promptLength)
            const pages = Math.ceil(n / page)
            const kPages = Math.max(1, Math.floor(B / page))
            if ((layer - full) % interval === 0) {
              // a Δ layer: dense attention, and the pages the next layers attend to
              chosen = null
              if (pages > kPages) {
                const r = Math.min(recent, kPages, pages)
                const top = topKIndices(ctx.ops, deltaPageScores(ctx, layer, query, page).subarray(0, pages - r), kPages - r)
                const last = Array.from({ length: r }, (_, i) => pages - r + i)
                chosen = { n, slots: pageSlots([...top, ...last], page, n) }
              }
              return null
            }
            if (!chosen || chosen.n !== n) return null
            return new Array(ctx.model.kvHeads).fill(chosen.slots)
          },
        }
      },
    })
  },
}
