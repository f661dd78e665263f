/**
 * Decode-step attention over secret shares: every query head attends to its own list of t cached
 * tokens (all of them, or a selection whose positions are public). Layout: q [H][d]; per query head
 * keys and values [t][d]; output [H][d]; all fixed point.
 *
 *   q' = q * scale                      (public constant, one truncation)
 *   logits_h = q'_h . K_h^T             (all heads' products in one round)
 *   p = softmax(logits)                 (rows = heads)
 *   out_h = p_h . V_h                   (one round)
 */
import { fixedConst, FixedPointError, type FxEngine } from './engine.js'
import { softmax, type SoftmaxOptions } from './fx-ops.js'
import { concatWords, type Words } from './ring.js'

export interface HeadTokens {
  /** [t][d] */
  keys: Words
  /** [t][d] */
  values: Words
}

/** [rows][cols] -> [cols][rows], local */
export function transpose(x: Words, rows: number, cols: number): Words {
  const out = new BigInt64Array(rows * cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = x[r * cols + c]
  return out
}

/** rows `idx` of a [*][d] matrix, local (the indices are public) */
export function gatherRows(x: Words, idx: ArrayLike<number>, d: number): Words {
  const out = new BigInt64Array(idx.length * d)
  for (let i = 0; i < idx.length; i++) out.set(x.subarray(idx[i] * d, (idx[i] + 1) * d), i * d)
  return out
}

/** Scaled query rows, [H][d]. */
export async function scaleQueries(e: FxEngine, q: Words, scale: number): Promise<Words> {
  return e.trunc(e.mulConst(q, fixedConst(scale, e.fracBits)), e.fracBits)
}

/** logits_h = q_h . K_h^T for each head: [H][t], fixed point (q already scaled) */
export async function headLogits(e: FxEngine, q: Words, keys: Words[], t: number, d: number): Promise<Words> {
  const products = keys.map((k, h) => ({ x: q.subarray(h * d, (h + 1) * d), y: transpose(k, t, d), k: 1, m: d, n: t }))
  return e.trunc(concatWords(...(await e.matmulRingBatch(products))), e.fracBits)
}

/** out_h = p_h . V_h for each head: [H][d] */
export async function headWeightedValues(e: FxEngine, p: Words, values: Words[], t: number, d: number): Promise<Words> {
  const products = values.map((v, h) => ({ x: p.subarray(h * t, (h + 1) * t), y: v, k: 1, m: t, n: d }))
  return e.trunc(concatWords(...(await e.matmulRingBatch(products))), e.fracBits)
}

export interface AttendOptions {
  /** logit scale (default 1 / sqrt(d)) */
  scale?: number
  softmax?: SoftmaxOptions
}

/** Attention of H query heads, head h over heads[h]'s t tokens. */
export function attendShares(e: FxEngine, q: Words, heads: HeadTokens[], t: number, d: number, options: AttendOptions = {}): Promise<Words> {
  return e.scope('attention', async () => {
    const H = heads.length
    if (q.length !== H * d) throw new FixedPointError(`attendShares: q holds ${q.length} words, expected ${H} heads x ${d}`)
    for (const [h, x] of heads.entries()) {
      if (x.keys.length !== t * d || x.values.length !== t * d) throw new FixedPointError(`attendShares: head ${h} holds ${x.keys.length / d} keys and ${x.values.length / d} values, expected ${t}`)
    }
    const qs = await scaleQueries(e, q, options.scale ?? 1 / Math.sqrt(d))
    const logits = await headLogits(e, qs, heads.map((x) => x.keys), t, d)
    const p = await softmax(e, logits, H, t, options.softmax)
    return headWeightedValues(e, p, heads.map((x) => x.values), t, d)
  })
}
