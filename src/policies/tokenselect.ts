/**
 * TokenSelect (Wu et al. 2025, "TokenSelect: Efficient Long-Context Inference and Length Extrapolation
 * for LLMs via Dynamic Token-Level KV Cache Selection", sec. 3.2-3.4): per query head h the logits
 * s[h,i] = q_h . k_i / sqrt(d) over the cache; a soft vote across heads, score_i = sum_h softmax_i(s[h,:]);
 * attention over the first `first` + the top-scoring + the last `last` tokens (`tokens` in all).
 * Query heads map to KV heads as the model does (h / group, the paper's; not h % kvHeads as one released
 * kernel does). The vote runs over all heads of a layer and the layer's KV heads share the selection
 * (`vote=layer`, the paper's); after an eviction that left the heads different slots it runs per KV head
 * over its group (`vote=head`, also selectable).
 *
 * Selection Cache (sec. 3.4): per layer, the last computed top-k is reused while the step's query stays
 * similar to the query it was computed for, cos(q_t, q_cached) >= `threshold` over the layer's query
 * heads; the first/last windows are always current. Hits and lookups are reported (`cacheHitRate`).
 * `plan` gives the same selection as data (SoftVotePlan) for a runtime that runs it on the GPU.
 *
 * `dense` (kvkit's, 0 by default: the paper selects in every layer) lets the first layers attend densely,
 * as Quest's first two layers do (Tang et al. 2024, sec. 4).
 *
 * `pool` > 1 (kvkit's, off by default: the paper selects single tokens) max-pools the vote over `pool`
 * neighbouring slots before the top-k, as SnapKV pools its observation votes (Li et al. 2024, sec. 4.3),
 * so a high-scoring token brings the tokens around it: a statement is attended whole, not its one most
 * voted token. The GPU plan (SoftVotePlan) has no pooling, so a pooled TokenSelect selects on the CPU;
 * dense layers are in the plan.
 *
 * Length extrapolation (sec. 3.3): `rope=selected` keeps keys before RoPE and rotates the selected keys by
 * their place in the selected list (and the query by the list's length), so attended positions stay below
 * the budget however long the cache grows; scoring then uses the pre-RoPE query and keys.
 */
import { F32Buf } from '../backend/heap.js'
import type { PolicyDefinition } from './registry.js'
import { scoreHeadKeys } from './segment-scores.js'
import {
  cosine, headsAligned, selectionBudget, selectionBudgetOptions, selectionPolicy, subBuf, windowedSelection,
  type Selection,
} from './selection.js'
import type { PolicyContext, SoftVotePlan } from './types.js'
import { PolicyOptionValueError } from './errors.js'

interface Cached {
  query: Float32Array
  /** per vote unit: the chosen slots outside the windows */
  top: Int32Array[]
}

/**
 * The top `k` slots of [first, n - last) by the soft vote of the query heads of `heads` (KV heads,
 * each contributing its group), through the scoring, soft-vote and top-k kernels.
 */
export function softVoteTop(ctx: PolicyContext, layer: number, heads: number[], query: Float32Array, n: number, first: number, last: number, k: number, pool = 1): Int32Array {
  const { group, headDim: d } = ctx.model
  const ops = ctx.ops
  const heap = ops.heap
  const rows = heads.length * group
  const lo = Math.min(first, n)
  const m = Math.max(0, n - last - lo)
  k = Math.min(k, m)
  if (k <= 0) return new Int32Array(0)
  const q = heap.allocF32(rows * d)
  const scores = heap.allocF32(rows * n)
  const vote = heap.allocF32(n)
  const pooled = pool > 1 ? heap.allocF32(n) : vote
  const idx = heap.allocI32(k)
  const scratch = heap.allocI32(m)
  try {
    heads.forEach((g, j) => {
      q.view.set(query.subarray(g * group * d, (g + 1) * group * d), j * group * d)
      scoreHeadKeys(ctx, layer, g, subBuf(q, j * group * d, group * d), group, 1 / Math.sqrt(d), subBuf(scores, j * group * n, group * n), { float16: true })
    })
    ops.softVote(scores, rows, n, vote)
    if (pooled !== vote) ops.pool1d('max', vote, n, pool, pooled)
    ops.topK(subBuf(pooled, lo, m), m, k, idx, scratch)
    const out = idx.view.slice()
    for (let i = 0; i < k; i++) out[i] += lo
    return out
  } finally {
    for (const b of [scratch, idx, ...(pooled !== vote ? [pooled] : []), vote, scores, q] as (F32Buf | { free(): void })[]) b.free()
  }
}

/**
 * The first and last windows of a budget of B tokens: `first` first, then `last`, each clipped to what is
 * left, except that the last window keeps the newest slot (the step's own key) whenever `last` > 0: with
 * B <= first (the paper's 128) every step attended only the prompt's first tokens, never itself.
 */
function windowsOf(B: number, first: number, last: number): { f: number; l: number } {
  const f = Math.min(first, B - Math.min(last, 1))
  return { f, l: Math.min(last, B - f) }
}

export const tokenselect: PolicyDefinition = {
  name: 'tokenselect',
  description: 'TokenSelect: per-step token selection by a soft vote of the query heads, with the Selection Cache',
  stage: 'selection',
  options: [
    ...selectionBudgetOptions,
    { name: 'first', type: 'integer', default: 128, min: 0, description: 'first tokens always attended (attention sinks; the paper: 128)' },
    { name: 'last', type: 'integer', default: 512, min: 0, description: 'most recent tokens always attended (the paper: 512)' },
    { name: 'threshold', type: 'number', default: 0.9, min: -1, max: 1, description: 'Selection Cache: reuse the last top-k while cos(q_t, q_cached) >= threshold' },
    { name: 'cache', type: 'boolean', default: true, description: 'use the Selection Cache (false: select anew every step)' },
    { name: 'vote', type: 'string', default: 'layer', choices: ['layer', 'head'], description: 'soft vote over all query heads of a layer (the paper) or per KV head over its group' },
    { name: 'dense', type: 'integer', default: 0, min: 0, description: 'first layers that attend densely, as Quest\'s (0: select in every layer, the paper)' },
    { name: 'pool', type: 'integer', default: 1, min: 1, description: 'max-pool the vote over this many neighbouring tokens (odd) before the top-k, so a statement is selected whole (SnapKV\'s pooling); 1: off, the paper' },
    { name: 'rope', type: 'string', default: 'true', choices: ['true', 'selected'], description: 'RoPE at true positions, or by place in the selected list (keys kept pre-RoPE; length extrapolation)' },
  ],
  check(o) {
    if ((o.pool as number) % 2 !== 1) throw new PolicyOptionValueError(`tokenselect: pool must be odd, got ${o.pool}`)
  },
  create(o, model) {
    const first = o.first as number
    const last = o.last as number
    const threshold = o.threshold as number
    const useCache = o.cache as boolean
    const pool = o.pool as number
    const dense = o.dense as number
    return selectionPolicy({
      name: 'tokenselect',
      needs: o.rope === 'selected' ? { cacheKeys: 'pre-rope' } : {},
      selector() {
        let aligned = o.vote === 'layer'
        let cached: (Cached | null)[] = []
        let hits = 0
        let lookups = 0
        return {
          onApplied(d) {
            aligned = aligned && headsAligned(d, model.kvHeads)
            cached = []
          },
          select(ctx, layer, query): Selection | null {
            if (layer < dense) return null
            const B = selectionBudget(o, ctx.promptLength)
            const lengths = Array.from({ length: model.kvHeads }, (_, g) => ctx.cache.length(layer, g))
            if (lengths.every((n) => n <= B)) return null
            const units = aligned ? [Array.from({ length: model.kvHeads }, (_, g) => g)] : lengths.map((_, g) => [g])
            const { f, l } = windowsOf(B, first, last)
            const prev = cached[layer]
            let top: Int32Array[]
            if (useCache) lookups++
            if (useCache && prev && cosine(query, prev.query) >= threshold) {
              hits++
              top = prev.top
            } else {
              top = units.map((heads) => softVoteTop(ctx, layer, heads, query, lengths[heads[0]], f, l, B - f - l, pool))
              cached[layer] = { query: query.slice(), top }
            }
            const out: Selection = new Array(model.kvHeads).fill(null)
            units.forEach((heads, u) => {
              for (const g of heads) out[g] = lengths[g] <= B ? null : windowedSelection(lengths[g], f, l, top[u])
            })
            return out
          },
          plan(ctx): SoftVotePlan | null {
            // the same budget, windows, vote units and dense layers as select(); rope=selected re-rotates
            // keys and pool max-pools the vote, which the plan cannot say
            if (o.rope === 'selected' || pool > 1) return null
            const B = selectionBudget(o, ctx.promptLength)
            const { f, l } = windowsOf(B, first, last)
            return {
              kind: 'soft-vote', budget: B, first: f, last: l, vote: aligned ? 'layer' : 'head', dense,
              threshold: useCache ? threshold : null,
              lookup(hit) {
                lookups++
                if (hit) hits++
              },
            }
          },
          report: () => ({ cacheLookups: lookups, cacheHits: hits, cacheHitRate: lookups ? hits / lookups : 0 }),
        }
      },
    })
  },
}
