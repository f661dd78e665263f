/**
 * MPCache's dynamic selection (Zeng et al., 2025, "MPCache: MPC-friendly KV cache eviction for efficient
 * private LLM inference", the hierarchical query-aware part), as a plain pure function: the cleartext
 * reference the secret-shared version (mpcache.ts) is held to, and a building block a kvkit selection
 * policy can reuse.
 *
 *   clusters of `clusterTokens` (32) consecutive tokens; per cluster and channel kmax, kmin
 *   similarity  s = sum_c q_c (alpha kmax_c + (1 - alpha) kmin_c),  alpha = 0.6 (no max or sign op: a
 *               single matrix product in MPC)
 *   level 1: the first and the last cluster are always kept; of the others, keep the top ones so that
 *            `keepClusters` (50%) of all clusters are kept
 *   level 2: split the kept middle clusters into blocks of `blockTokens` (16); keep the top blocks, as
 *            many as `keepBlocks` (20%) of all the cache's blocks (at most all candidates)
 *   selected = first cluster + last cluster + kept blocks, ascending
 *
 * Where the paper is silent, choices made here: ratios count the whole cache (first and last cluster
 * included at level 1), rounded up; ties go to the lower index.
 */

export interface MPCacheDynamicOptions {
  /** weight of kmax in the similarity (default 0.6) */
  alpha?: number
  /** tokens per level-1 cluster (default 32) */
  clusterTokens?: number
  /** share of clusters kept at level 1, first and last included (default 0.5) */
  keepClusters?: number
  /** tokens per level-2 block; must divide clusterTokens (default 16) */
  blockTokens?: number
  /** share of the cache's blocks kept at level 2 (default 0.2) */
  keepBlocks?: number
}

export type ResolvedDynamicOptions = Required<MPCacheDynamicOptions>

export class MPCacheOptionError extends RangeError {
  override name = 'MPCacheOptionError'
}

export function resolveDynamicOptions(o: MPCacheDynamicOptions = {}): ResolvedDynamicOptions {
  const r = { alpha: o.alpha ?? 0.6, clusterTokens: o.clusterTokens ?? 32, keepClusters: o.keepClusters ?? 0.5, blockTokens: o.blockTokens ?? 16, keepBlocks: o.keepBlocks ?? 0.2 }
  if (!(r.alpha >= 0 && r.alpha <= 1)) throw new MPCacheOptionError(`mpcache: alpha must be in [0, 1], got ${r.alpha}`)
  if (!Number.isInteger(r.clusterTokens) || r.clusterTokens < 2) throw new MPCacheOptionError(`mpcache: clusterTokens must be an integer >= 2, got ${r.clusterTokens}`)
  if (!Number.isInteger(r.blockTokens) || r.blockTokens < 1 || r.clusterTokens % r.blockTokens !== 0) throw new MPCacheOptionError(`mpcache: blockTokens must be a positive integer dividing clusterTokens (${r.clusterTokens}), got ${r.blockTokens}`)
  for (const k of ['keepClusters', 'keepBlocks'] as const) if (!(r[k] > 0 && r[k] <= 1)) throw new MPCacheOptionError(`mpcache: ${k} must be in (0, 1], got ${r[k]}`)
  return r
}

/** How many of each level a cache of n tokens keeps (public: the MPC protocol reveals these counts). */
export function dynamicPlan(n: number, o: ResolvedDynamicOptions): { clusters: number; middleKept: number; blocksKept: number } {
  const clusters = Math.ceil(n / o.clusterTokens)
  const middle = Math.max(0, clusters - 2)
  const middleKept = Math.min(middle, Math.max(0, Math.ceil(o.keepClusters * clusters) - 2))
  const perCluster = o.clusterTokens / o.blockTokens
  const blocksKept = Math.min(middleKept * perCluster, Math.ceil((o.keepBlocks * n) / o.blockTokens))
  return { clusters, middleKept, blocksKept }
}

/**
 * alpha kmax + (1 - alpha) kmin per group of `tokens` consecutive keys and channel: [groups][d].
 * keys: [n][d]. The last group may be partial.
 */
export function groupSummaries(keys: ArrayLike<number>, n: number, d: number, tokens: number, alpha: number): Float64Array {
  const groups = Math.ceil(n / tokens)
  const out = new Float64Array(groups * d)
  for (let g = 0; g < groups; g++) {
    for (let c = 0; c < d; c++) {
      let mx = -Infinity
      let mn = Infinity
      for (let t = g * tokens; t < Math.min(n, (g + 1) * tokens); t++) {
        const v = keys[t * d + c]
        if (v > mx) mx = v
        if (v < mn) mn = v
      }
      out[g * d + c] = alpha * mx + (1 - alpha) * mn
    }
  }
  return out
}

function dot(q: ArrayLike<number>, m: ArrayLike<number>, row: number, d: number): number {
  let s = 0
  for (let c = 0; c < d; c++) s += q[c] * m[row * d + c]
  return s
}

/** the top `k` of `ids` by score, ties to the lower id */
function topIds(ids: number[], score: (id: number) => number, k: number): number[] {
  return ids.map((id) => [score(id), id]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((p) => p[1])
}

/**
 * The tokens one query attends to: ascending indices into the n cached tokens.
 * @param q the decode query of one head, [d]
 * @param keys the head's cached (post-RoPE) keys, [n][d]
 */
export function mpcacheDynamicSelect(q: ArrayLike<number>, keys: ArrayLike<number>, n: number, d: number, options: MPCacheDynamicOptions = {}): Int32Array {
  const o = resolveDynamicOptions(options)
  if (q.length !== d || keys.length < n * d) throw new MPCacheOptionError(`mpcacheDynamicSelect: expected q of ${d} and keys of ${n} x ${d}, got ${q.length} and ${keys.length}`)
  const plan = dynamicPlan(n, o)
  if (plan.clusters <= 2) return Int32Array.from({ length: n }, (_, i) => i)
  const cs = groupSummaries(keys, n, d, o.clusterTokens, o.alpha)
  const middle = Array.from({ length: plan.clusters - 2 }, (_, i) => i + 1)
  const keptClusters = topIds(middle, (c) => dot(q, cs, c, d), plan.middleKept)
  const bs = groupSummaries(keys, n, d, o.blockTokens, o.alpha)
  const per = o.clusterTokens / o.blockTokens
  const candidates = keptClusters.flatMap((c) => Array.from({ length: per }, (_, j) => c * per + j))
  const blocks = topIds(candidates, (b) => dot(q, bs, b, d), plan.blocksKept)
  return selectedTokens(blocks, n, o)
}

/** first cluster + last cluster + the tokens of the kept blocks, ascending */
export function selectedTokens(blocks: ArrayLike<number>, n: number, o: ResolvedDynamicOptions): Int32Array {
  const keep = new Uint8Array(n)
  const lastStart = (Math.ceil(n / o.clusterTokens) - 1) * o.clusterTokens
  for (let i = 0; i < Math.min(n, o.clusterTokens); i++) keep[i] = 1
  for (let i = lastStart; i < n; i++) keep[i] = 1
  for (const b of Array.from(blocks)) for (let i = b * o.blockTokens; i < Math.min(n, (b + 1) * o.blockTokens); i++) keep[i] = 1
  const out: number[] = []
  keep.forEach((k, i) => k && out.push(i))
  return Int32Array.from(out)
}
