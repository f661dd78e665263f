/**
 * MPCache over secret shares (Zeng et al., 2025): the static "look once" eviction at prefill and the
 * hierarchical dynamic selection at each decode step, on any FxEngine (so the same code runs on the
 * cleartext engine for bit-exact checks).
 *
 * What the protocols reveal (by design, as in MPCache, where the selection drives a cheaper attention):
 * - static eviction: the kept positions of each layer (the keep mask is opened; their count follows);
 * - dynamic selection: per query head and step, which clusters and blocks are selected (so the
 *   gather of the selected keys and values is local and the attention runs over t tokens only);
 *   the counts are fixed by the public plan (mpcache-select.ts, `dynamicPlan`).
 * Scores, summaries, keys, values, queries and attention outputs stay secret-shared.
 */
import { attendShares, gatherRows, headLogits, scaleQueries, transpose, type AttendOptions } from './attention.js'
import { fixedConst, FixedPointError, type FxEngine } from './engine.js'
import { maxRows, softmax, topK } from './fx-ops.js'
import { dynamicPlan, resolveDynamicOptions, selectedTokens, type MPCacheDynamicOptions, type ResolvedDynamicOptions } from './mpcache-select.js'
import { concatWords, type Words } from './ring.js'

export interface StaticEvictionInput {
  /** per query head: the observation queries, [w][d] */
  queries: Words[]
  /** positions of the w observation queries */
  queryPositions: ArrayLike<number>
  /** per KV head: the cached keys, [n][d] */
  keys: Words[]
  /** positions of the n cached tokens */
  keyPositions: ArrayLike<number>
  headDim: number
}

/** a logit far below any real one, for masked (future) tokens: -2^12 in real units */
const MASKED_LOGIT = -4096

/**
 * Static eviction at prefill end: keep token j if some observation query of some head gives it
 * softmax(Q K^T / sqrt(d))[., j] >= tau (causal); one keep set shared by the layer's heads, as
 * kvkit's plaintext policy (src/policies/mpcache.ts) decides it. Opens the keep mask.
 * @returns the kept indices into the n cached tokens, ascending
 */
export function mpcacheStaticEvict(e: FxEngine, input: StaticEvictionInput, options: { tau?: number; softmax?: AttendOptions['softmax'] } = {}): Promise<Int32Array> {
  return e.scope('mpcache-static', async () => {
    const tau = options.tau ?? 1e-3
    const { queries, keys, headDim: d } = input
    const n = input.keyPositions.length
    const w = input.queryPositions.length
    const H = queries.length
    const group = H / keys.length
    if (!Number.isInteger(group) || group < 1) throw new FixedPointError(`mpcacheStaticEvict: ${H} query heads do not split evenly over ${keys.length} KV heads`)
    if (!(tau > 0 && tau <= 1)) throw new FixedPointError(`mpcacheStaticEvict: tau must be in (0, 1], got ${tau}`)
    const f = e.fracBits
    const q = await scaleQueries(e, concatWords(...queries), 1 / Math.sqrt(d))
    const products = queries.map((_, h) => ({ x: q.subarray(h * w * d, (h + 1) * w * d), y: transpose(keys[Math.floor(h / group)], n, d), k: w, m: d, n }))
    let logits = await e.trunc(concatWords(...(await e.matmulRingBatch(products))), f)
    // causal mask (public): masked logits become MASKED_LOGIT, and their exp is zeroed after softmax's exp
    const visible = new BigInt64Array(H * w * n)
    const maskedAdd = new BigInt64Array(H * w * n)
    const masked = fixedConst(MASKED_LOGIT, f)
    for (let r = 0; r < H * w; r++) {
      const qp = input.queryPositions[r % w]
      for (let j = 0; j < n; j++) {
        const see = input.keyPositions[j] <= qp
        visible[r * n + j] = see ? 1n : 0n
        maskedAdd[r * n + j] = see ? 0n : masked
      }
    }
    logits = e.addPublic(e.mulPublic(logits, visible), maskedAdd)
    const p = e.mulPublic(await softmax(e, logits, H * w, n, { ...options.softmax, variant: options.softmax?.variant ?? 'clip' }), visible)
    // per token: the largest probability over heads and queries, then >= tau
    const best = await maxRows(e, transpose(p, H * w, n), n, H * w)
    const below = await e.ltz(e.addConst(best, -fixedConst(tau, f)))
    const keep = await e.reveal(e.addConst(e.mulConst(below, -1n), 1n))
    const out: number[] = []
    keep.forEach((k, j) => k === 1n && out.push(j))
    return Int32Array.from(out)
  })
}

/** The secret-shared summaries of one KV head, computed once at prefill: alpha kmax + (1 - alpha) kmin. */
export interface HeadSummaries {
  /** [full clusters][d] */
  clusters: Words
  /** [full clusters * blocks per cluster][d] */
  blocks: Words
}

/**
 * Summaries of the full clusters and their blocks (the last, possibly partial, cluster is always kept
 * and never scored): per channel max and min over each group's tokens by the log-depth max tree
 * (min = -max(-x)), then alpha kmax + (1 - alpha) kmin. All KV heads in one batch.
 */
export function mpcacheSummaries(e: FxEngine, keys: Words[], n: number, d: number, options: MPCacheDynamicOptions = {}): Promise<HeadSummaries[]> {
  return e.scope('mpcache-summaries', async () => {
    const o = resolveDynamicOptions(options)
    const full = Math.floor(n / o.clusterTokens)
    const per = o.clusterTokens / o.blockTokens
    const summarise = async (tokens: number, groups: number): Promise<Words[]> => {
      // rows (head, group, channel) of `tokens` elements; maxima of x and of -x in one batch
      const rows: Words[] = []
      for (const k of keys) for (let g = 0; g < groups; g++) rows.push(transpose(k.subarray(g * tokens * d, (g + 1) * tokens * d), tokens, d))
      const x = concatWords(...rows)
      const R = keys.length * groups * d
      const both = await maxRows(e, concatWords(x, e.mulConst(x, -1n)), 2 * R, tokens)
      const kmax = both.subarray(0, R)
      const kmin = e.mulConst(both.subarray(R), -1n)
      const f = e.fracBits
      const mix = e.add(e.mulConst(kmax, fixedConst(o.alpha, f)), e.mulConst(kmin, fixedConst(1 - o.alpha, f)))
      const m = await e.trunc(mix, f)
      return keys.map((_, h) => m.slice(h * groups * d, (h + 1) * groups * d))
    }
    if (full === 0) return keys.map(() => ({ clusters: new BigInt64Array(0), blocks: new BigInt64Array(0) }))
    const clusters = await summarise(o.clusterTokens, full)
    const blocks = await summarise(o.blockTokens, full * per)
    return keys.map((_, h) => ({ clusters: clusters[h], blocks: blocks[h] }))
  })
}

/** per row, the revealed top-k indices */
async function revealTop(e: FxEngine, scores: Words, rows: number, n: number, k: number): Promise<number[][]> {
  const { indices } = await topK(e, scores, rows, n, k)
  const idx = await e.reveal(indices)
  return Array.from({ length: rows }, (_, r) => Array.from(idx.subarray(r * k, (r + 1) * k), Number))
}

/**
 * The hierarchical dynamic selection for H query heads at one decode step (mpcacheDynamicSelect over
 * shares): level-1 cluster scores for all heads in one round, a bitonic top-k over the middle
 * clusters, level-2 block scores of the kept clusters' blocks, a second top-k. Opens the selections.
 * @returns per query head, the selected token indices, ascending
 */
export function mpcacheSelect(e: FxEngine, q: Words, summaries: HeadSummaries[], n: number, d: number, options: MPCacheDynamicOptions = {}): Promise<Int32Array[]> {
  return e.scope('mpcache-select', async () => {
    const o: ResolvedDynamicOptions = resolveDynamicOptions(options)
    const H = q.length / d
    const group = H / summaries.length
    const plan = dynamicPlan(n, o)
    const all = Int32Array.from({ length: n }, (_, i) => i)
    if (plan.clusters <= 2 || plan.middleKept === 0) return Array.from({ length: H }, () => (plan.clusters <= 2 ? all : selectedTokens([], n, o)))
    const middle = plan.clusters - 2
    const kv = (h: number): HeadSummaries => summaries[Math.floor(h / group)]
    const s1 = await headLogits(e, q, Array.from({ length: H }, (_, h) => kv(h).clusters.subarray(d, (1 + middle) * d)), middle, d)
    const kept = (await revealTop(e, s1, H, middle, plan.middleKept)).map((row) => row.map((i) => i + 1))
    const per = o.clusterTokens / o.blockTokens
    const cand = kept.map((row) => row.flatMap((c) => Array.from({ length: per }, (_, j) => c * per + j)))
    const m = cand[0].length
    const s2 = await headLogits(e, q, cand.map((ids, h) => gatherRows(kv(h).blocks, ids, d)), m, d)
    const top = await revealTop(e, s2, H, m, plan.blocksKept)
    return top.map((row, h) => selectedTokens(row.map((i) => cand[h][i]), n, o))
  })
}

export type AttentionMethod = 'full' | 'mpcache' | 'topk'

export interface LayerShares {
  /** decode queries, [H][d] */
  q: Words
  /** per KV head, [n][d] */
  keys: Words[]
  values: Words[]
  /** MPCache summaries (from mpcacheSummaries), needed for 'mpcache' */
  summaries?: HeadSummaries[]
}

export interface DecodeStepOptions extends AttendOptions {
  mpcache?: MPCacheDynamicOptions
  /** adjacent layers that share one selection (default 2: MPCache's index sharing) */
  shareLayers?: number
  /** tokens kept per head by 'topk' (default: as many as MPCache selects) */
  topk?: number
}

/**
 * One decode step's attention over every layer: 'full' attends to all n tokens; 'mpcache' selects
 * per head (layers in groups of `shareLayers` reuse the group's first layer's selection); 'topk'
 * ranks all n tokens by their exact logits with a bitonic top-k and attends to the kept ones (a plain
 * top-k eviction baseline at MPCache's budget). Returns each layer's output [H][d] and the selections.
 */
export async function decodeStepAttention(e: FxEngine, layers: LayerShares[], n: number, d: number, method: AttentionMethod, options: DecodeStepOptions = {}): Promise<{ outputs: Words[]; selections: Int32Array[][] }> {
  const share = options.shareLayers ?? 2
  if (!Number.isInteger(share) || share < 1) throw new FixedPointError(`decodeStepAttention: shareLayers must be a positive integer, got ${share}`)
  const outputs: Words[] = []
  const selections: Int32Array[][] = []
  for (const [l, layer] of layers.entries()) {
    const H = layer.q.length / d
    const group = H / layer.keys.length
    const kvOf = (h: number): number => Math.floor(h / group)
    let sel: Int32Array[]
    if (method === 'full') {
      sel = Array.from({ length: H }, () => Int32Array.from({ length: n }, (_, i) => i))
    } else if (method === 'mpcache') {
      if (!layer.summaries) throw new FixedPointError(`decodeStepAttention: layer ${l} has no MPCache summaries`)
      sel = l % share === 0 ? await mpcacheSelect(e, layer.q, layer.summaries, n, d, options.mpcache) : selections[l - 1]
    } else if (method === 'topk') {
      const k = options.topk ?? mpcacheSelectedCount(n, options.mpcache)
      const qs = await scaleQueries(e, layer.q, options.scale ?? 1 / Math.sqrt(d))
      const logits = await headLogits(e, qs, Array.from({ length: H }, (_, h) => layer.keys[kvOf(h)]), n, d)
      sel = (await revealTop(e, logits, H, n, k)).map((row) => Int32Array.from(row.sort((a, b) => a - b)))
    } else {
      throw new FixedPointError(`decodeStepAttention: method must be 'full', 'mpcache' or 'topk', got ${JSON.stringify(method)}`)
    }
    selections.push(sel)
    const t = sel[0].length
    const heads = sel.map((idx, h) => ({ keys: gatherRows(layer.keys[kvOf(h)], idx, d), values: gatherRows(layer.values[kvOf(h)], idx, d) }))
    outputs.push(await attendShares(e, layer.q, heads, t, d, options))
  }
  return { outputs, selections }
}

/** How many tokens MPCache's dynamic selection keeps of n (public). */
export function mpcacheSelectedCount(n: number, options: MPCacheDynamicOptions = {}): number {
  const o = resolveDynamicOptions(options)
  return selectedTokens(Array.from({ length: dynamicPlan(n, o).blocksKept }, (_, i) => o.clusterTokens / o.blockTokens + i), n, o).length
}
