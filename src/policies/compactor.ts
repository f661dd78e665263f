/**
 * Compactor (Chari & Van Durme 2025, "Compactor: Calibrated Query-Agnostic KV Cache Compression with
 * Approximate Leverage Scores", arXiv 2507.08143), as kvpress's `CompactorPress` computes it
 * (kvpress/presses/compactor_press.py over leverage_press.py and non_causal_attention_press.py).
 * Query-agnostic: two z-scored views of each prompt token, over the tokens between `sinks` first and
 * `recent` last ones (always kept), blended as  blending x leverage + attention:
 *   leverage: the statistical leverage x_i^T (X^T X + 0.01 I)^-1 x_i of each pre-RoPE key, X the keys
 *     centred over the sequence and sketched to `sketch` dimensions by a seeded Gaussian (d x k, / sqrt k):
 *     keys that stick out of the span of the others (outliers) score high
 *   attention: non-causal attention inside chunks of `chunk` tokens (softmax(q k^T), unscaled, every
 *     query of the chunk against every key of the chunk, the last chunk padded with zero rows), summed
 *     over the queries, averaged over the KV head's query group, times ||v||, average-pooled over 3
 *     positions
 * each z-scored over all the layer's KV heads together. `blending` defaults to the share evicted
 * (1 - budget). Per KV head, uniform budget; memory freed.
 * Costs: it asks for every prompt query (observation window = the prompt) and the pre-RoPE keys.
 */
import { budgetFrom, budgetOptions, tokensPerHead } from './budget.js'
import { evictionPolicy, protect } from './evict.js'
import type { PolicyDefinition } from './registry.js'
import { mulberry32 } from './seeded-random.js'
import type { PolicyContext } from './types.js'

/** [d][k] Gaussian sketch of one (layer, KV head), scaled by 1/sqrt(k) */
export type Sketch = (layer: number, head: number, d: number, k: number) => Float32Array

/** a seeded Gaussian sketch (Box-Muller over mulberry32), different for every layer and head */
export function gaussianSketch(seed: number): Sketch {
  return (layer, head, d, k) => {
    const u = mulberry32((seed * 7919 + layer * 131 + head) >>> 0)
    const out = new Float32Array(d * k)
    for (let i = 0; i < out.length; i++) out[i] = (Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u())) / Math.sqrt(k)
    return out
  }
}

/** z-score over every value of every array together (unbiased std, as torch's .std()) */
function zScore(xs: Float64Array[]): void {
  let n = 0
  let sum = 0
  for (const x of xs) for (const v of x) (sum += v), n++
  const mean = sum / n
  let ss = 0
  for (const x of xs) for (const v of x) ss += (v - mean) ** 2
  const std = Math.max(Math.sqrt(ss / (n - 1)), 1e-6)
  for (const x of xs) for (let i = 0; i < x.length; i++) x[i] = (x[i] - mean) / std
}

/** leverage of rows [from, to) of pre-RoPE keys [n][kvHeads][d] of one head, after centring and sketching */
export function leverageScores(keys: Float32Array, kvHeads: number, head: number, d: number, from: number, to: number, phi: Float32Array, k: number): Float64Array {
  const S = to - from
  const mean = new Float64Array(d)
  for (let t = from; t < to; t++) for (let c = 0; c < d; c++) mean[c] += keys[(t * kvHeads + head) * d + c]
  for (let c = 0; c < d; c++) mean[c] /= S
  const X = new Float64Array(S * k)
  for (let t = 0; t < S; t++) {
    const row = ((from + t) * kvHeads + head) * d
    for (let c = 0; c < d; c++) {
      const x = keys[row + c] - mean[c]
      for (let j = 0; j < k; j++) X[t * k + j] += x * phi[c * k + j]
    }
  }
  // Cholesky of G = X^T X + 0.01 I (kvpress's first jitter), then x_i^T G^-1 x_i = ||L^-1 x_i||^2
  const L = new Float64Array(k * k)
  for (let t = 0; t < S; t++) for (let a = 0; a < k; a++) for (let b = 0; b <= a; b++) L[a * k + b] += X[t * k + a] * X[t * k + b]
  for (let a = 0; a < k; a++) L[a * k + a] += 0.01
  for (let j = 0; j < k; j++) {
    let v = L[j * k + j]
    for (let m = 0; m < j; m++) v -= L[j * k + m] ** 2
    const root = Math.sqrt(v)
    L[j * k + j] = root
    for (let i = j + 1; i < k; i++) {
      let w = L[i * k + j]
      for (let m = 0; m < j; m++) w -= L[i * k + m] * L[j * k + m]
      L[i * k + j] = w / root
    }
  }
  const out = new Float64Array(S)
  const y = new Float64Array(k)
  for (let t = 0; t < S; t++) {
    let s = 0
    for (let a = 0; a < k; a++) {
      let v = X[t * k + a]
      for (let m = 0; m < a; m++) v -= L[a * k + m] * y[m]
      y[a] = v / L[a * k + a]
      s += y[a] * y[a]
    }
    out[t] = s
  }
  return out
}

/** per KV head, column sums of softmax(q k^T) inside chunks of `chunk` slots of [from, to), mean over the group */
function chunkedAttention(ctx: PolicyContext, layer: number, from: number, to: number, chunk: number): Float64Array[] {
  const { ops, cache, model, hooks } = ctx
  const { group, headDim: d } = model
  const heap = ops.heap
  const q = hooks[layer].observationQueries!
  const w = hooks[layer].observationPositions!.length
  const S = to - from
  const kb = heap.allocF32(chunk * d)
  const table = heap.allocI32(1)
  const qb = heap.allocF32(chunk * d)
  const logits = heap.allocF32(chunk * chunk)
  const vote = heap.allocF32(chunk)
  try {
    table.view[0] = kb.ptr
    const view = { kTable: table.ptr, vTable: table.ptr, pageTokens: chunk, n: chunk, d }
    return Array.from({ length: model.kvHeads }, (_, h) => {
      const keys = cache.readKeys(layer, h)
      const out = new Float64Array(S)
      for (let s = 0; s < S; s += chunk) {
        const T = Math.min(chunk, S - s)
        kb.view.fill(0)
        kb.view.set(keys.subarray((from + s) * d, (from + s + T) * d))
        for (let g = 0; g < group; g++) {
          const qh = h * group + g
          qb.view.fill(0)
          qb.view.set(q.subarray((qh * w + from + s) * d, (qh * w + from + s + T) * d))
          ops.scoreKeys(qb, chunk, view, 1, logits)
          ops.softVote(logits, chunk, chunk, vote)
          const v = vote.view
          for (let i = 0; i < T; i++) out[s + i] += v[i] / group
        }
      }
      return out
    })
  } finally {
    vote.free()
    logits.free()
    qb.free()
    table.free()
    kb.free()
  }
}

/** Compactor's blended score of one layer, one array per KV head (sinks and recent at +Infinity) */
export function compactorScores(ctx: PolicyContext, layer: number, o: { sinks: number; recent: number; chunk: number; sketch: number; blending: number }, phi: Sketch): Float32Array[] {
  const { cache, model, hooks } = ctx
  const n = cache.length(layer, 0)
  const keysPre = hooks[layer].preRopeKeys
  if (!keysPre || hooks[layer].observationPositions?.length !== n) throw new Error(`layer ${layer}: Compactor needs every prompt query and the pre-RoPE keys of an uncompressed prompt`)
  const left = Math.min(o.sinks, n)
  const right = Math.min(o.recent, Math.max(0, n - left))
  const from = left
  const to = n - right
  if (to - from < 2) return Array.from({ length: model.kvHeads }, () => new Float32Array(n).fill(Infinity))
  const { headDim: d, kvHeads } = model
  const lev = Array.from({ length: kvHeads }, (_, h) => leverageScores(keysPre, kvHeads, h, d, from, to, phi(layer, h, d, o.sketch), o.sketch))
  for (const l of lev) for (let i = 0; i < l.length; i++) l[i] = Math.max(0, l[i])
  zScore(lev)
  const att = chunkedAttention(ctx, layer, from, to, o.chunk)
  const S = to - from
  att.forEach((a, h) => {
    const values = cache.readValues(layer, h)
    for (let i = 0; i < S; i++) {
      let s = 0
      for (let c = 0; c < d; c++) s += values[(from + i) * d + c] ** 2
      a[i] *= Math.sqrt(s)
    }
    // avg_pool1d(kernel 3, padding 1), the zero padding counted
    const p = a.slice()
    for (let i = 0; i < S; i++) a[i] = ((i > 0 ? p[i - 1] : 0) + p[i] + (i + 1 < S ? p[i + 1] : 0)) / 3
  })
  zScore(att)
  return att.map((a, h) => {
    const score = new Float32Array(n)
    for (let i = 0; i < S; i++) score[from + i] = o.blending * lev[h][i] + a[i]
    return protect(score, left, right)
  })
}

export const compactor: PolicyDefinition = {
  name: 'compactor',
  description: 'Compactor: query-agnostic; leverage of the pre-RoPE keys (Gaussian sketch) blended with non-causal chunked attention x ||v||',
  stage: 'eviction',
  options: [...budgetOptions.filter((x) => x.name !== 'every'),
    { name: 'sinks', type: 'integer', default: 8, min: 0, description: 'always keep the first N tokens' },
    { name: 'recent', type: 'integer', default: 4, min: 0, description: 'always keep the last N prompt tokens' },
    { name: 'chunk', type: 'integer', default: 256, min: 1, description: 'tokens per chunk of the non-causal attention' },
    { name: 'sketch', type: 'integer', default: 48, min: 1, description: 'dimensions of the Gaussian sketch of the keys' },
    { name: 'blending', type: 'number', default: null, min: 0, description: 'weight of the leverage score (default: the share evicted, 1 - budget)' },
    { name: 'seed', type: 'integer', default: 0, min: 0, description: 'seed of the Gaussian sketch' }],
  create(o) {
    return compactorPolicy(o as unknown as CompactorOptions, gaussianSketch(o.seed as number))
  },
}

export interface CompactorOptions {
  budget?: number
  tokens?: number
  sinks: number
  recent: number
  chunk: number
  sketch: number
  blending?: number
}

/** Compactor with a given sketch (the parity test replays kvpress's own random sketches) */
export function compactorPolicy(o: CompactorOptions, phi: Sketch) {
  const budget = budgetFrom(o as unknown as Record<string, number>)
  return evictionPolicy(() => ({
    name: 'compactor', budget, every: 0, traits: { readsPrompt: 'whole' },
    needs: { observationWindow: Number.MAX_SAFE_INTEGER, preRopeKeys: true },
    score(ctx, layer) {
      const n = ctx.cache.length(layer, 0)
      const blending = o.blending ?? 1 - (budget.ratio ?? tokensPerHead(budget, n) / n)
      return compactorScores(ctx, layer, { ...o, blending }, phi)
    },
  }))
}
