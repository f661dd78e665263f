/**
 * Quest (Tang et al. 2024, "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference",
 * sec. 3): the cache in pages of `page` tokens (16) with per-channel key bounds kmax/kmin, kept up to date
 * as tokens arrive; a page's score is an upper bound of its attention logits, sum_c max(q_c kmax_c,
 * q_c kmin_c); attention over the top pages; the first `dense` layers (2) attend densely.
 *
 * kvkit selects per KV head (its gathered kernel reads one KV head's rows for the whole group), so a
 * page's score is the sum of its group's query heads' bounds (the paper scores per query head). The page
 * holding the newest tokens is always attended (the step's own key is there); `tokens` / page pages in all.
 */
import { PageBounds } from './page-bounds.js'
import type { PolicyDefinition } from './registry.js'
import { topKIndices } from './budget.js'
import { pageSlots, selectionBudget, selectionBudgetOptions, selectionPolicy, type Selection } from './selection.js'
import type { PolicyContext } from './types.js'

/**
 * Page scores of one KV head, [pages]: the summed bound of its group's query heads, through the scoring
 * kernel over [kmax | kmin] rows with the query split into [max(q, 0) | min(q, 0)].
 */
export function questPageScores(ctx: PolicyContext, bounds: PageBounds, layer: number, head: number, query: Float32Array): Float32Array {
  const { group, headDim: d } = ctx.model
  const view = bounds.view(ctx, layer, head)
  const heap = ctx.ops.heap
  const q = heap.allocF32(group * 2 * d)
  const out = heap.allocF32(group * view.n)
  try {
    const Q = q.view
    for (let h = 0; h < group; h++) {
      for (let c = 0; c < d; c++) {
        const x = query[(head * group + h) * d + c]
        Q[h * 2 * d + c] = x > 0 ? x : 0
        Q[h * 2 * d + d + c] = x < 0 ? x : 0
      }
    }
    ctx.ops.scoreKeys(q, group, view, 1, out)
    const O = out.view
    const score = new Float32Array(view.n)
    for (let h = 0; h < group; h++) for (let p = 0; p < view.n; p++) score[p] += O[h * view.n + p]
    return score
  } finally {
    out.free()
    q.free()
  }
}

/**
 * Quest's selection for one layer: per KV head, the top `budget / page` pages by questPageScores (the
 * newest page always among them), or null where the head holds no more pages than that.
 */
export function questSelect(ctx: PolicyContext, bounds: PageBounds, layer: number, query: Float32Array, budget: number): Selection {
  const page = bounds.page
  const kPages = Math.max(1, Math.floor(budget / page))
  return Array.from({ length: ctx.model.kvHeads }, (_, g) => {
    const n = ctx.cache.length(layer, g)
    const pages = Math.ceil(n / page)
    if (pages <= kPages) return null
    const score = questPageScores(ctx, bounds, layer, g, query)
    const top = topKIndices(ctx.ops, score.subarray(0, pages - 1), kPages - 1)
    return pageSlots([...top, pages - 1], page, n)
  })
}

export const quest: PolicyDefinition = {
  name: 'quest',
  description: 'Quest: per-step top pages by the query against per-page key bounds (kmax/kmin)',
  stage: 'selection',
  options: [
    ...selectionBudgetOptions,
    { name: 'page', type: 'integer', default: 16, min: 1, description: 'tokens per page (the paper: 16)' },
    { name: 'dense', type: 'integer', default: 2, min: 0, description: 'first layers that attend densely (the paper: 2)' },
  ],
  create(o) {
    const page = o.page as number
    const dense = o.dense as number
    return selectionPolicy({
      name: 'quest',
      selector() {
        // the bounds follow the cache's own record of changed rows (KVCache.changes), so an applied
        // decision (an eviction, a KIVI step) costs the pages it touched, not a rebuild
        let bounds: PageBounds | null = null
        return {
          select(ctx, layer, query): Selection | null {
            if (layer < dense) return null
            bounds ??= new PageBounds(ctx.ops.heap, page)
            return questSelect(ctx, bounds, layer, query, selectionBudget(o, ctx.promptLength))
          },
          dispose: () => bounds?.free(),
        }
      },
    })
  },
}
