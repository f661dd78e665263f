/**
 * Attention probabilities of given queries over one cached KV head, computed on demand with the kernels
 * (ops.scoreKeys + ops.softmaxRows) and a causal mask from the positions: the scorer the second policy
 * family shares (Keyformer, WindowKV, RazorAttention, KVMerger, MPCache).
 */
import type { Ops } from '../backend/ops.js'
import type { HeadView, KVCache } from '../cache/types.js'
import type { LayerHooks, PolicyContext } from './types.js'

/**
 * P[r][j] = softmax_j(scale * q_r . k_j) over the n keys of `view`, with keys whose position is after the
 * query's position masked out (a query sees only earlier tokens and itself). queries: [rows][d].
 */
export function attentionProbs(
  ops: Ops, view: HeadView, keyPositions: Int32Array,
  queries: Float32Array, rows: number, queryPositions: ArrayLike<number>, scale: number,
): Float32Array {
  return scoreMasked(ops, view, keyPositions, queries, rows, queryPositions, scale, true)
}

/** The logits scale * q_r . k_j of attentionProbs before the softmax; masked entries are -Infinity. */
export function attentionLogits(
  ops: Ops, view: HeadView, keyPositions: Int32Array,
  queries: Float32Array, rows: number, queryPositions: ArrayLike<number>, scale: number,
): Float32Array {
  return scoreMasked(ops, view, keyPositions, queries, rows, queryPositions, scale, false)
}

function scoreMasked(
  ops: Ops, view: HeadView, keyPositions: Int32Array,
  queries: Float32Array, rows: number, queryPositions: ArrayLike<number>, scale: number, softmax: boolean,
): Float32Array {
  const n = view.n
  const d = view.d
  if (queries.length !== rows * d) throw new RangeError(`attentionProbs: queries hold ${queries.length} floats, expected ${rows} x ${d}`)
  if (keyPositions.length !== n) throw new RangeError(`attentionProbs: ${keyPositions.length} key positions for ${n} keys`)
  if (queryPositions.length !== rows) throw new RangeError(`attentionProbs: ${queryPositions.length} query positions for ${rows} rows`)
  if (n === 0 || rows === 0) return new Float32Array(0)
  const heap = ops.heap
  const q = heap.f32From(queries)
  const s = heap.allocF32(rows * n)
  try {
    ops.scoreKeys(q, rows, view, scale, s)
    const sv = s.view
    for (let r = 0; r < rows; r++) {
      const qp = queryPositions[r]
      for (let j = 0; j < n; j++) if (keyPositions[j] > qp) sv[r * n + j] = -Infinity
    }
    if (softmax) ops.softmaxRows(s, rows, n)
    return s.view.slice()
  } finally {
    q.free()
    s.free()
  }
}

/** The observation queries of the query heads that read KV head `kvHead`, as [group * w][d] rows. */
export function groupObservationQueries(
  hooks: LayerHooks, kvHead: number, group: number, headDim: number, lastW?: number,
): { queries: Float32Array; positions: Int32Array; rows: number; w: number } {
  const oq = hooks.observationQueries
  const op = hooks.observationPositions
  if (!oq || !op) throw new Error(`layer ${hooks.layer}: the runtime supplied no observation queries (needs.observationWindow unset?)`)
  const wAll = op.length
  const w = Math.min(lastW ?? wAll, wAll)
  const rows = group * w
  const queries = new Float32Array(rows * headDim)
  const positions = new Int32Array(rows)
  for (let g = 0; g < group; g++) {
    const h = kvHead * group + g
    for (let i = 0; i < w; i++) {
      const src = (h * wAll + (wAll - w + i)) * headDim
      queries.set(oq.subarray(src, src + headDim), (g * w + i) * headDim)
      positions[g * w + i] = op[wAll - w + i]
    }
  }
  return { queries, positions, rows, w }
}

/** Observation-window attention of one KV head's query group: [group * w][n] probabilities. */
export function observedProbs(ctx: PolicyContext, layer: number, kvHead: number, lastW?: number): { probs: Float32Array; rows: number; n: number } {
  const { cache, model } = ctx
  if (cache.segments(layer, kvHead).length > 1) throw new Error(`layer ${layer} head ${kvHead}: keys are channel-pruned; score before channel pruning`)
  const view = cache.view(layer, kvHead)
  const { queries, positions, rows } = groupObservationQueries(ctx.hooks[layer], kvHead, model.group, model.headDim, lastW)
  const probs = attentionProbs(ctx.ops, view, cache.positions(layer, kvHead), queries, rows, positions, 1 / Math.sqrt(model.headDim))
  return { probs, rows, n: view.n }
}

/** Column sums of a [rows][n] matrix: the attention each token received. */
export function columnSums(p: Float32Array, rows: number, n: number): Float32Array {
  const out = new Float32Array(n)
  for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) out[j] += p[r * n + j]
  return out
}

/** Throws unless every KV head of the layer holds the same token positions (needed to share one selection). */
export function sharedPositions(cache: KVCache, layer: number, kvHeads: number): Int32Array {
  const p0 = cache.positions(layer, 0)
  for (let h = 1; h < kvHeads; h++) {
    const p = cache.positions(layer, h)
    if (p.length !== p0.length || p.some((x, i) => x !== p0[i])) {
      throw new Error(`layer ${layer}: KV heads hold different tokens, so one selection cannot be shared across them`)
    }
  }
  return p0
}
