/**
 * KVMerger (Wang et al., 2024, "Model Tells You Where to Merge"): merge similar neighbours instead of
 * dropping them.
 *
 *   per layer, KV head, at prefill end (the last `window` tokens stay as they are):
 *     merging sets = maximal runs of adjacent tokens whose consecutive keys have cosine similarity > threshold
 *     a_i  = attention token i receives from the observation window (summed over the query group)
 *     for each set S with more than one token:
 *       pivot p = argmax_{i in S} a_i
 *       w_i = exp(-||k_p - k_i||^2 / (2 sigma^2))      (w_p = 1)
 *       k_p <- sum w_i k_i / sum w_i,  v_p <- sum w_i v_i / sum w_i;  the other members are dropped
 *     budget: if more tokens than the budget remain, the ones with the lowest a (outside the window) go
 *
 * sigma: the `sigma` option, or by default per set sqrt(mean over members of ||k_p - k_i||^2), so the
 * weights are scale-free (the methods note leaves sigma open). A merged pivot's score is its own a_p.
 */
import type { Decision, HeadDecision, MergeSpec } from '../cache/types.js'
import type { Ops } from '../backend/ops.js'
import { budgetOnly, checkBudget, keepCount, topKIndices } from './budget.js'
import { columnSums, observedProbs } from './observed-attention.js'
import type { BudgetOptions, Policy, PolicyContext } from './types.js'
import type { PolicyDefinition } from './registry.js'
import { statelessPolicy } from './stateless.js'

export interface KVMergerOptions extends BudgetOptions {
  /** cosine similarity above which adjacent keys merge (default 0.8) */
  threshold?: number
  sigma?: number
  /** observation queries and protected recent tokens (default 32) */
  window?: number
}

export function createKVMerger(options: KVMergerOptions = {}): Policy {
  const threshold = options.threshold ?? 0.8
  const window = options.window ?? 32
  if (!(threshold > -1 && threshold < 1)) throw new RangeError(`kvmerger: threshold must be in (-1, 1), got ${threshold}`)
  if (options.sigma !== undefined && !(options.sigma > 0)) throw new RangeError(`kvmerger: sigma must be > 0, got ${options.sigma}`)
  if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`kvmerger: window must be a positive integer, got ${window}`)
  checkBudget('kvmerger', options)

  return statelessPolicy({
    name: 'kvmerger',
    needs: { observationWindow: window },
    onPrefillEnd(ctx: PolicyContext): Decision | null {
      const { cache, model } = ctx
      const heads: HeadDecision[] = []
      for (let layer = 0; layer < model.layers; layer++) {
        for (let h = 0; h < model.kvHeads; h++) {
          const budget = keepCount(options, cache.length(layer, h))
          // a budget that holds the whole prompt keeps it unmerged
          if (budget !== null && budget >= cache.length(layer, h)) continue
          const { probs, rows, n } = observedProbs(ctx, layer, h, window)
          const a = columnSums(probs, rows, n)
          heads.push(mergeHead(ctx.ops, layer, h, cache.readKeys(layer, h), n, model.headDim, a, threshold, options.sigma, Math.min(window, n), budget))
        }
      }
      return { heads }
    },
  })
}

/** runs [start, end) of adjacent tokens before `limit` whose consecutive keys are more similar than threshold */
export function mergingSets(keys: Float32Array, limit: number, d: number, threshold: number): [number, number][] {
  const sets: [number, number][] = []
  let start = 0
  for (let i = 1; i <= limit; i++) {
    if (i < limit && cosine(keys, i - 1, i, d) > threshold) continue
    if (i - start > 1) sets.push([start, i])
    start = i
  }
  return sets
}

export function mergeHead(
  ops: Ops, layer: number, head: number, keys: Float32Array, n: number, d: number, a: Float32Array,
  threshold: number, sigma: number | undefined, window: number, budget: number | null,
): HeadDecision {
  const alive = new Uint8Array(n).fill(1)
  const merges: MergeSpec[] = []
  for (const [s, e] of mergingSets(keys, n - window, d, threshold)) {
    let p = s
    for (let i = s + 1; i < e; i++) if (a[i] > a[p]) p = i
    const dist = Array.from({ length: e - s }, (_, j) => sqDist(keys, p, s + j, d))
    const sig2 = sigma !== undefined ? sigma * sigma : dist.reduce((x, y) => x + y, 0) / (e - s - 1) || 1
    merges.push({
      pivot: p,
      members: Int32Array.from({ length: e - s }, (_, j) => s + j),
      weights: Float32Array.from(dist, (x) => Math.exp(-x / (2 * sig2))),
    })
    for (let i = s; i < e; i++) if (i !== p) alive[i] = 0
  }
  let keep: number[] = []
  for (let i = 0; i < n; i++) if (alive[i]) keep.push(i)
  if (budget !== null && keep.length > budget) {
    const old = keep.filter((i) => i < n - window)
    const recent = keep.filter((i) => i >= n - window)
    const room = Math.max(0, budget - recent.length)
    const score = Float32Array.from(old, (i) => a[i])
    keep = Array.from(topKIndices(ops, score, room), (j) => old[j]).concat(recent.slice(Math.max(0, recent.length - budget)))
  }
  const kept = new Set(keep)
  return { layer, head, keep: Int32Array.from(keep), merges: merges.filter((m) => kept.has(m.pivot)) }
}

function cosine(k: Float32Array, i: number, j: number, d: number): number {
  let dot = 0, ni = 0, nj = 0
  for (let c = 0; c < d; c++) {
    dot += k[i * d + c] * k[j * d + c]
    ni += k[i * d + c] ** 2
    nj += k[j * d + c] ** 2
  }
  return ni > 0 && nj > 0 ? dot / Math.sqrt(ni * nj) : 0
}

function sqDist(k: Float32Array, i: number, j: number, d: number): number {
  let s = 0
  for (let c = 0; c < d; c++) s += (k[i * d + c] - k[j * d + c]) ** 2
  return s
}

export const kvmerger: PolicyDefinition = {
  name: 'kvmerger',
  description: 'KVMerger: runs of adjacent similar keys merge into their most attended token with Gaussian weights; then evict to the budget by attention',
  stage: 'eviction',
  options: [
    ...budgetOnly(null),
    { name: 'threshold', type: 'number', default: 0.8, min: -1, max: 1, minExclusive: true, maxExclusive: true, description: 'cosine similarity of adjacent keys above which they merge' },
    { name: 'sigma', type: 'number', default: null, min: 0, minExclusive: true, description: 'Gaussian width (default: per set, the RMS key distance to the pivot)' },
    { name: 'window', type: 'integer', default: 32, min: 1, description: 'observation queries; the most recent tokens stay unmerged' },
  ],
  create: (o) => createKVMerger(o as KVMergerOptions),
}
